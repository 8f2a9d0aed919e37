module github.com/indexpilot/indexpilot/integration

go 1.26.0

require (
	github.com/indexpilot/indexpilot/events v0.0.0
	github.com/indexpilot/indexpilot/pkg v0.0.0
	github.com/indexpilot/indexpilot/services/collector v0.0.0
	github.com/indexpilot/indexpilot/services/executor v0.0.0
	github.com/indexpilot/indexpilot/services/gatekeeper v0.0.0
	github.com/indexpilot/indexpilot/services/scorer v0.0.0
	github.com/stretchr/testify v1.11.1
	github.com/twmb/franz-go v1.22.3
	github.com/twmb/franz-go/pkg/kfake v0.0.0-20260918054303-01f206a7e32c
	github.com/twmb/franz-go/pkg/kmsg v1.15.1
)

replace (
	github.com/indexpilot/indexpilot/events => ../events
	github.com/indexpilot/indexpilot/pkg => ../pkg
	github.com/indexpilot/indexpilot/services/collector => ../services/collector
	github.com/indexpilot/indexpilot/services/executor => ../services/executor
	github.com/indexpilot/indexpilot/services/gatekeeper => ../services/gatekeeper
	github.com/indexpilot/indexpilot/services/scorer => ../services/scorer
)
