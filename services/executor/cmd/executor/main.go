// Command executor runs the executor stage on its own: it builds the
// indexes the gatekeeper approved and publishes the outcomes.
package main

import (
	"os"

	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/executor"
)

func main() { os.Exit(stage.Main(executor.Name, executor.Start)) }
