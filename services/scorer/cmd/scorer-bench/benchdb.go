package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// openBench creates the throwaway database db, connects to it, installs
// the extensions and IndexPilot's metadata schema. drop closes the pool
// and drops the database; call it whatever happened.
func openBench(ctx context.Context, admin, db string, extensions ...string) (b *bench, drop func() error, err error) {
	b = &bench{admin: admin, db: db}
	aconn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, nil, fmt.Errorf("connect admin: %w", err)
	}
	if _, err := aconn.Exec(ctx, marker+"create database "+postgres.Ident(b.db)); err != nil {
		aconn.Close(context.Background())
		return nil, nil, fmt.Errorf("create database: %w", err)
	}
	drop = func() error {
		defer aconn.Close(context.Background())
		if b.pool != nil {
			b.pool.Close()
		}
		if _, err := aconn.Exec(context.Background(), marker+"drop database if exists "+postgres.Ident(b.db)+" with (force)"); err != nil {
			return fmt.Errorf("drop database: %w", err)
		}
		return nil
	}
	fail := func(err error) (*bench, func() error, error) {
		_ = drop()
		return nil, nil, err
	}
	u, err := url.Parse(admin)
	if err != nil {
		return fail(fmt.Errorf("parse admin url: %w", err))
	}
	u.Path = "/" + b.db
	b.dsn = u.String()
	if b.pool, err = pgxpool.New(ctx, b.dsn); err != nil {
		return fail(err)
	}
	for _, ext := range extensions {
		if _, err := b.pool.Exec(ctx, marker+"create extension if not exists "+postgres.Ident(ext)); err != nil {
			return fail(fmt.Errorf("create extension %s: %w", ext, err))
		}
	}
	if _, err := metadata.Migrate(ctx, b.pool); err != nil {
		return fail(err)
	}
	return b, drop, nil
}

// newScorer is a scorer of the bench database as target "bench" on a
// memory bus; closeFn releases the bus and the target pools.
func (b *bench) newScorer(window time.Duration, budgetMB int64, verbose bool) (s *scorer.Scorer, closeFn func(), err error) {
	cfg := config.Default()
	cfg.DatabaseURL = b.dsn
	cfg.Targets = []config.Target{{Name: "bench", DSN: b.dsn}}
	if window > 0 {
		cfg.Scorer.Window = window
	}
	cfg.Scorer.StorageBudgetMB = budgetMB
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if verbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	mem := bus.NewMemory(logger)
	targets := stage.NewTargets(cfg.Targets, scorer.Name)
	closeFn = func() {
		targets.Close()
		_ = mem.Close()
	}
	s, err = scorer.New(stage.Deps{Config: cfg, Bus: mem, Control: b.pool, Targets: targets, Logger: logger})
	if err != nil {
		closeFn()
		return nil, nil, err
	}
	return s, closeFn, nil
}

// build creates the chosen indexes and returns their real size.
func (b *bench) build(ctx context.Context, chosen []*events.IndexCandidateScored) (int64, error) {
	var total int64
	for _, c := range chosen {
		name := indexdef.Name(c.Index)
		if _, err := b.pool.Exec(ctx, marker+indexdef.CreateSQL(c.Index, name, false)); err != nil {
			return 0, fmt.Errorf("build %s: %w", name, err)
		}
		var n int64
		if err := b.pool.QueryRow(ctx, marker+"select pg_relation_size($1::regclass)", postgres.Ident(c.Index.Schema, name)).Scan(&n); err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}
