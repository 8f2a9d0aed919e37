package collector

import (
	"context"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// Not parallel: the signal goes to the whole test process, and sequential
// tests run while no parallel test does.
func TestSIGHUPReloadsTargets(t *testing.T) {
	work := pgtest.NewDatabase(t)
	work.Exec(t, "create table orders (id bigint primary key)")
	var mu sync.Mutex
	loads := 0
	load := func() (config.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		loads++
		cfg := config.Default()
		cfg.DatabaseURL = work.URL
		cfg.Targets = []config.Target{{Name: "main", DSN: work.URL}, {Name: "added", DSN: work.URL}}
		cfg.Collector.Interval = 20 * time.Millisecond
		return cfg, cfg.Validate()
	}
	d := deps(t, []config.Target{{Name: "main", DSN: work.URL}}, 20*time.Millisecond, nil)
	s := subscribe(t, d.Bus)

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	d.OnReady = func() { close(ready) }
	done := make(chan error, 1)
	go func() { done <- StartWith(ctx, d, Options{LoadConfig: load}) }()
	<-ready
	require.Eventually(t, func() bool { return len(s.polls("main")) >= 2 }, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGHUP))
	require.Eventually(t, func() bool { return len(s.polls("added")) >= 1 }, 20*time.Second, 10*time.Millisecond,
		"SIGHUP must reload the targets")
	cancel()
	require.NoError(t, <-done)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, loads)
}
