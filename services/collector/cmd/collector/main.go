// Command collector runs the collector stage on its own: it polls the
// configured targets' statistics and publishes them on the bus.
package main

import (
	"os"

	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/collector"
)

func main() { os.Exit(stage.Main(collector.Name, collector.Start)) }
