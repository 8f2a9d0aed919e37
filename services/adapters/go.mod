module github.com/indexpilot/indexpilot/services/adapters

go 1.26.0

replace (
	github.com/indexpilot/indexpilot/events => ../../events
	github.com/indexpilot/indexpilot/pkg => ../../pkg
)
