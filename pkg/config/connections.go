package config

import "time"

// Connections bounds what IndexPilot may open on the servers it watches
// (see docs/connections.md). The budget is per PostgreSQL server (host and
// port), shared by every target that is a database of that server and by
// every stage of one process.
type Connections struct {
	// PerServer is how many connections IndexPilot holds open at once to
	// one server for collection, scoring, the gatekeeper's reads and the
	// executor's checks together. Each running index build adds one
	// dedicated connection on top (builds are limited by the gatekeeper).
	// At least 2: a scoring run holds its what-if session and reads the
	// catalogs on a second connection.
	PerServer int `yaml:"per_server"`
	// IdleTimeout closes a connection that has been idle this long, so
	// that quiet targets hold no connection between polls.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// HeadroomPercent and HeadroomMin are the margin of free connection
	// slots the server must keep: IndexPilot opens no new connection while
	// fewer than max(HeadroomMin, HeadroomPercent % of max_connections)
	// slots remain free for ordinary roles.
	HeadroomPercent int `yaml:"headroom_percent"`
	HeadroomMin     int `yaml:"headroom_min"`
	// BackoffMax caps the wait between two attempts on a server that has
	// no headroom or refused a connection with too_many_connections
	// (SQLSTATE 53300). The wait starts at a second and doubles.
	BackoffMax time.Duration `yaml:"backoff_max"`
	// ControlPool is the size of the pool on the control database
	// (database_url) of each process.
	ControlPool int `yaml:"control_pool"`
}

func defaultConnections() Connections {
	return Connections{
		PerServer:       3,
		IdleTimeout:     2 * time.Second,
		HeadroomPercent: 10,
		HeadroomMin:     5,
		BackoffMax:      30 * time.Second,
		ControlPool:     4,
	}
}

func (c Connections) validate(add func(string, ...any)) {
	if c.PerServer < 2 {
		add("connections.per_server: %d is less than 2 (a scoring run needs its what-if session and one read at once)", c.PerServer)
	}
	positive(add, "connections.idle_timeout", c.IdleTimeout)
	if c.HeadroomPercent < 0 || c.HeadroomPercent > 90 {
		add("connections.headroom_percent: %d is not between 0 and 90", c.HeadroomPercent)
	}
	if c.HeadroomMin < 0 {
		add("connections.headroom_min: %d is negative", c.HeadroomMin)
	}
	positive(add, "connections.backoff_max", c.BackoffMax)
	if c.ControlPool < 1 {
		add("connections.control_pool: %d is less than 1", c.ControlPool)
	}
}
