package collector

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// targetConn is the pool of one target, opened on first use and closed when
// the target's worker stops. Each target has its own, so that a reload can
// add targets and an unreachable one costs the others nothing.
type targetConn struct {
	target config.Target
	stage  string

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
	p, err := postgres.Connect(ctx, c.target.DSN, c.stage)
	if err != nil {
		return nil, 0, err
	}
	v, err := postgres.ServerVersion(ctx, p)
	if err != nil {
		p.Close()
		return nil, 0, err
	}
	c.pool, c.version = p, v
	return p, v, nil
}

func (c *targetConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pool != nil {
		c.pool.Close()
		c.pool = nil
	}
}
