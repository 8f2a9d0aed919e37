package chaos

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// phaseWait bounds how long a fault waits for the moment it aims at; past
// it the fault is injected anyway and the run notes it.
const phaseWait = 90 * time.Second

// inject starts the fault of kind in the background and returns its
// variant (the kind and, where it applies, the moment aimed at) and a
// channel closed once the fault is over.
func (r *runState) inject(ctx context.Context, kind string) (string, <-chan struct{}) {
	done := make(chan struct{})
	variant := kind
	var f func(context.Context)
	switch kind {
	case FaultKill:
		phase := killPhases[r.rng.IntN(len(killPhases))]
		variant += "/" + phase
		victim := r.rng.IntN(len(r.procs))
		pause := time.Duration(200+r.rng.IntN(2800)) * time.Millisecond
		f = func(ctx context.Context) { r.kill(ctx, phase, victim, pause) }
	case FaultTerminate:
		// Three rounds, the first aimed at a moment: the start (schema
		// migration, first polls), a running build, a validation.
		at := []string{"startup", "during_build", "validation"}[r.rng.IntN(3)]
		variant += "/" + at
		delays := []time.Duration{0, time.Duration(1+r.rng.IntN(10)) * time.Second, time.Duration(1+r.rng.IntN(20)) * time.Second}
		if at == "startup" {
			delays[0] = time.Duration(100+r.rng.IntN(1500)) * time.Millisecond
		}
		f = func(ctx context.Context) {
			if at != "startup" {
				r.waitPhase(ctx, at)
			}
			for _, d := range delays {
				sleep(ctx, d)
				r.terminate(ctx)
			}
		}
	case FaultLongTx:
		mode := []string{"lock", "write"}[r.rng.IntN(2)]
		variant += "/" + mode
		hold := time.Duration(5+r.rng.IntN(15)) * time.Second
		f = func(ctx context.Context) { r.longTx(ctx, mode, hold) }
	case FaultStatsReset:
		at := []string{"before_build", "during_build", "after_build"}[r.rng.IntN(3)]
		variant += "/" + at
		f = func(ctx context.Context) {
			r.waitPhase(ctx, at)
			r.resetStats(ctx)
		}
	case FaultUnreachable:
		at := []string{"before_build", "during_build", "after_build"}[r.rng.IntN(3)]
		variant += "/" + at
		hold := time.Duration(5+r.rng.IntN(20)) * time.Second
		f = func(ctx context.Context) {
			r.waitPhase(ctx, at)
			r.unreachable(ctx, hold)
		}
	case FaultBroker:
		at := []string{"before_build", "during_build", "after_build"}[r.rng.IntN(3)]
		how := []string{"sigterm", "sigkill"}[r.rng.IntN(2)]
		variant += "/" + at
		f = func(ctx context.Context) {
			r.waitPhase(ctx, at)
			if how == "sigkill" {
				r.broker.kill()
			} else {
				r.broker.stop(10 * time.Second)
			}
			sleep(ctx, 30*time.Second)
			if err := r.broker.start(); err != nil {
				r.note("restart the broker: %v", err)
			}
		}
	default:
		f = func(context.Context) {}
	}
	go func() {
		defer close(done)
		f(ctx)
	}()
	return variant, done
}

// phaseSQL holds, per moment, a query on the run's database that is true
// once the pipeline is there.
var phaseSQL = map[string]string{
	"before_build": `select exists(select 1 from indexpilot.recommendations where state in ('approved','building'))`,
	"during_build": `select exists(select 1 from pg_stat_progress_create_index p join indexpilot.builds b on b.state = 'running'
 where p.datid = (select oid from pg_database where datname = current_database()))`,
	"after_build": `select exists(select 1 from indexpilot.builds where state = 'done')`,
	"validation":  `select exists(select 1 from indexpilot.validations where state <> 'done')`,
	"removal":     `select exists(select 1 from indexpilot.removals where state in ('pending','running'))`,
}

// waitPhase polls until the pipeline reaches phase (or phaseWait passes:
// then the run notes that the moment was missed).
func (r *runState) waitPhase(ctx context.Context, phase string) bool {
	deadline := time.Now().Add(phaseWait)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		var at bool
		if err := r.target.QueryRow(ctx, marker+phaseSQL[phase]).Scan(&at); err == nil && at {
			return true
		}
		sleep(ctx, 50*time.Millisecond)
	}
	r.note("%s not reached within %s; fault injected anyway", phase, phaseWait)
	return false
}

// kill SIGKILLs process victim at phase and restarts it after pause.
func (r *runState) kill(ctx context.Context, phase string, victim int, pause time.Duration) {
	r.waitPhase(ctx, phase)
	if ctx.Err() != nil {
		return
	}
	p := r.procs[victim]
	p.kill()
	sleep(ctx, pause)
	if err := p.start(); err != nil {
		r.note("restart after SIGKILL: %v", err)
	}
}

// terminate ends every IndexPilot session on the run's database.
func (r *runState) terminate(ctx context.Context) {
	var n int
	err := r.s.admin.QueryRow(ctx, marker+`select count(pg_terminate_backend(pid)) from pg_stat_activity
 where datname = $1 and application_name like 'indexpilot-%'`, r.name).Scan(&n)
	if err != nil && ctx.Err() == nil {
		r.note("terminate: %s", postgres.Describe(err))
	}
}

// longTx holds a transaction that conflicts with building an index on the
// table the pipeline is about to index (or indexing): "lock" holds SHARE
// UPDATE EXCLUSIVE, which CREATE INDEX CONCURRENTLY needs; "write" holds an
// open write transaction the build must wait out.
func (r *runState) longTx(ctx context.Context, mode string, hold time.Duration) {
	r.waitPhase(ctx, "before_build")
	var schema, table string
	err := r.target.QueryRow(ctx, marker+`select schema_name, table_name from indexpilot.recommendations
 where state in ('approved','building') order by updated_at limit 1`).Scan(&schema, &table)
	if err != nil {
		schema, table = "public", "interactions"
	}
	cc, err := pgx.ParseConfig(r.url)
	if err != nil {
		r.note("long transaction: invalid connection string")
		return
	}
	cc.RuntimeParams["application_name"] = appBlocker
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		r.note("long transaction: connect: %s", postgres.Describe(err))
		return
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		r.note("long transaction: %s", postgres.Describe(err))
		return
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	rel := postgres.Ident(schema, table)
	if mode == "lock" {
		_, err = tx.Exec(ctx, marker+"lock table "+rel+" in share update exclusive mode")
	} else {
		_, err = tx.Exec(ctx, marker+"update "+rel+" set id = id where ctid = (select ctid from "+rel+" limit 1)")
	}
	if err != nil {
		r.note("long transaction on %s.%s: %s", schema, table, postgres.Describe(err))
		return
	}
	sleep(ctx, hold)
}

// resetStats resets the statistics of the run's database only: its
// pg_stat_* counters and its pg_stat_statements entries (never the whole
// cluster's: the server is shared).
func (r *runState) resetStats(ctx context.Context) {
	for _, q := range []string{
		"select pg_stat_reset()",
		"select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)",
	} {
		if _, err := r.target.Exec(ctx, marker+q); err != nil && ctx.Err() == nil {
			r.note("stats reset: %s", postgres.Describe(err))
		}
	}
}

// unreachable refuses new connections to the run's database and ends the
// open ones (the application's too), for hold.
func (r *runState) unreachable(ctx context.Context, hold time.Duration) {
	db := postgres.Ident(r.name)
	if _, err := r.s.admin.Exec(ctx, marker+"alter database "+db+" allow_connections false"); err != nil {
		r.note("unreachable: %s", postgres.Describe(err))
		return
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := r.s.admin.Exec(cctx, marker+"alter database "+db+" allow_connections true"); err != nil {
			r.note("reachable again: %s", postgres.Describe(err))
		}
	}()
	end := time.Now().Add(hold)
	for ctx.Err() == nil && time.Now().Before(end) {
		// Sessions that were connecting when the switch flipped may slip in.
		_, _ = r.s.admin.Exec(ctx, marker+`select pg_terminate_backend(pid) from pg_stat_activity
 where datname = $1 and pid <> pg_backend_pid()`, r.name)
		sleep(ctx, time.Second)
	}
}
