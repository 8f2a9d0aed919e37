package collector

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// targetConn is the pool of one target, opened on first use and closed when
// the target's worker stops. Each target has its own, so that a reload can
// add targets and an unreachable one costs the others nothing; all of them
// take their connections from the budget of their server
// (postgres.Servers), and hold none while idle.
type targetConn struct {
	target config.Target
	stage  string
	// log receives the warning about missing privileges (nil: the
	// default logger).
	log *slog.Logger

	mu      sync.Mutex
	pool    *pgxpool.Pool
	version int
}

// get returns the pool and the server's version, connecting if needed.
func (c *targetConn) get(ctx context.Context) (*pgxpool.Pool, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pool != nil {
		return c.pool, c.version, nil
	}
	p, err := postgres.Servers().Open(ctx, c.target.DSN, c.stage)
	if err != nil {
		return nil, 0, err
	}
	v, err := postgres.ServerVersion(ctx, p)
	if err != nil {
		postgres.Servers().Close(p)
		return nil, 0, err
	}
	c.pool, c.version = p, v
	// Said once per worker (the pool is kept), not on every poll.
	if priv, err := postgres.ReadPrivileges(ctx, p); err == nil {
		if w := priv.CollectionWarning(); w != "" {
			log := c.log
			if log == nil {
				log = slog.Default().With("target", c.target.Name)
			}
			log.Warn(w)
		}
	}
	return p, v, nil
}

func (c *targetConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pool != nil {
		postgres.Servers().Close(c.pool)
		c.pool = nil
	}
}
