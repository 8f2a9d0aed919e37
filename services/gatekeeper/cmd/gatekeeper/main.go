// Command gatekeeper runs IndexPilot's gatekeeper stage on its own.
package main

import (
	"os"

	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
)

func main() { os.Exit(stage.Main(gatekeeper.Name, gatekeeper.Start)) }
