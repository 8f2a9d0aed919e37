// Command indexpilot-chaos runs the pipeline under seeded random faults
// against throwaway databases on a real PostgreSQL and checks IndexPilot's
// promises after every run (see docs/reliability.md). Settings come from
// the environment: CHAOS_SEED, CHAOS_RUNS, CHAOS_FROM, CHAOS_SHAPE, CHAOS_PROCS,
// CHAOS_FAULTS, CHAOS_BIN, CHAOS_BROKER_BIN, CHAOS_LOG_DIR, and TEST_DATABASE_URL for the server.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/indexpilot/indexpilot/services/indexpilot/internal/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := chaos.Options{
		Seed:     uint64(time.Now().UnixNano() % 1_000_000),
		Runs:     len(chaos.Faults),
		Procs:    1,
		AdminURL: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		Shape:    os.Getenv("CHAOS_SHAPE"),
		Bin:      os.Getenv("CHAOS_BIN"),
		Broker:   os.Getenv("CHAOS_BROKER_BIN"),
		LogDir:   os.Getenv("CHAOS_LOG_DIR"),
	}
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		opts.AdminURL = u
	}
	for _, v := range []struct {
		env string
		dst any
	}{{"CHAOS_SEED", &opts.Seed}, {"CHAOS_RUNS", &opts.Runs}, {"CHAOS_FROM", &opts.From}, {"CHAOS_PROCS", &opts.Procs}} {
		s := os.Getenv(v.env)
		if s == "" {
			continue
		}
		n, err := strconv.ParseUint(s, 10, 63)
		if err != nil {
			fmt.Fprintf(os.Stderr, "chaos: %s=%q is not a non-negative integer\n", v.env, s)
			os.Exit(2)
		}
		switch d := v.dst.(type) {
		case *uint64:
			*d = n
		case *int:
			*d = int(n)
		}
	}
	if f := os.Getenv("CHAOS_FAULTS"); f != "" {
		opts.Faults = strings.Split(f, ",")
	}
	code := chaos.Main(ctx, opts, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
