// Command scorer runs IndexPilot's scorer stage on its own.
package main

import (
	"os"

	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/scorer"
)

func main() { os.Exit(stage.Main(scorer.Name, scorer.Start)) }
