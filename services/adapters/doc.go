// Package adapters holds the monitoring consumers: each subscribes to the
// event topics in its own consumer group, like any other stage.
package adapters
