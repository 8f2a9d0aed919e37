package scorer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/scorer"
)

func TestRemovalProposals(t *testing.T) {
	db, d := setup(t)
	db.Exec(t,
		`create index orders_status_idx on public.orders (status)`,                     // prefix of orders_status_created
		`create index orders_status_created_dup on public.orders (status, created_at)`, // duplicate
		`create unique index orders_id_uq on public.orders (id)`,                       // duplicate of the pkey, but unique
		`create index orders_created_idx on public.orders (created_at)`,                // user index, never scanned
		`create index ip_orders_note_0badc0de on public.orders (note)`,                 // ours, never scanned
		`create index ip_orders_customer_id_0badc0df on public.orders (customer_id)`,   // ours, scanned
		`create table public.ident (a int not null, b int not null)`,
		`create unique index ident_a on public.ident (a)`,
		`alter table public.ident replica identity using index ident_a`,
		`create index ident_a_b on public.ident (a, b)`,
		`create table public.broken (x int)`,
		`insert into public.broken values (0)`,
	)
	// A failed concurrent build leaves an INVALID index behind.
	_, err := db.Pool.Exec(context.Background(), `create index concurrently broken_inv on public.broken ((1 / x))`)
	require.Error(t, err)

	s, err := scorer.New(d)
	require.NoError(t, err)
	idx := func(scans map[string]int64) []events.IndexStat {
		var out []events.IndexStat
		for n, sc := range scans {
			out = append(out, events.IndexStat{Name: n, Scans: sc, Valid: true})
		}
		return out
	}
	t0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	feedTable(t, s, &events.TableStatObserved{Target: "main", Schema: "public", Table: "orders", ObservedAt: t0,
		Indexes: idx(map[string]int64{"orders_created_idx": 0, "ip_orders_note_0badc0de": 0, "ip_orders_customer_id_0badc0df": 0})})
	feedTable(t, s, &events.TableStatObserved{Target: "main", Schema: "public", Table: "orders", ObservedAt: t0.Add(20 * 24 * time.Hour),
		Indexes: idx(map[string]int64{"orders_created_idx": 0, "ip_orders_note_0badc0de": 0, "ip_orders_customer_id_0badc0df": 7})})
	last := t0.Add(40 * 24 * time.Hour)
	feedTable(t, s, &events.TableStatObserved{Target: "main", Schema: "public", Table: "orders", ObservedAt: last,
		Indexes: idx(map[string]int64{"orders_created_idx": 0, "ip_orders_note_0badc0de": 0, "ip_orders_customer_id_0badc0df": 7})})

	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	got := map[string]*events.IndexRemovalProposed{}
	for _, p := range r.Removals {
		got[p.IndexName] = p
	}
	names := func() []string {
		var out []string
		for n := range got {
			out = append(out, n)
		}
		return out
	}
	require.ElementsMatch(t, []string{"orders_status_idx", "orders_status_created_dup", "broken_inv", "ip_orders_note_0badc0de"}, names())
	require.Equal(t, events.RemovalPrefix, got["orders_status_idx"].Reason)
	require.Equal(t, "orders_status_created", got["orders_status_idx"].RedundantWith)
	require.Equal(t, events.RemovalDuplicate, got["orders_status_created_dup"].Reason)
	require.Equal(t, "orders_status_created", got["orders_status_created_dup"].RedundantWith)
	require.Equal(t, events.RemovalInvalid, got["broken_inv"].Reason)
	un := got["ip_orders_note_0badc0de"]
	require.Equal(t, events.RemovalUnused, un.Reason)
	require.True(t, un.CreatedByIndexPilot)
	require.Equal(t, t0, *un.UnusedSince)
	require.Equal(t, last, un.ObservedAt)
	require.Contains(t, un.Definition, "CREATE INDEX ip_orders_note_0badc0de")
	require.Equal(t, []string{"note"}, un.Index.Columns)

	// Also user indexes when configured; the scanned one, the primary key,
	// the unique index and the replica identity never.
	d.Config.Scorer.RemoveUserIndexes = true
	s, err = scorer.New(d)
	require.NoError(t, err)
	r2, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	var unused []string
	for _, p := range r2.Removals {
		require.NotContains(t, []string{"orders_pkey", "orders_id_uq", "ident_a", "ip_orders_customer_id_0badc0df"}, p.IndexName)
		if p.Reason == events.RemovalUnused {
			unused = append(unused, p.IndexName)
		}
	}
	require.ElementsMatch(t, []string{"orders_created_idx", "ip_orders_note_0badc0de"}, unused)

	// A shorter history is not enough: 35 days by default.
	d.Config.Scorer.UnusedRetention = 41 * 24 * time.Hour
	s, err = scorer.New(d)
	require.NoError(t, err)
	r3, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	for _, p := range r3.Removals {
		require.NotEqual(t, events.RemovalUnused, p.Reason, p.IndexName)
	}
	// Same events, same proposals, same ids.
	r4, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, r3.Payloads(), r4.Payloads())

	// A statistics reset on day 30 (the counter reads 0 before and after
	// it: scans in between are lost) restarts the period there.
	d.Config.Scorer.UnusedRetention = 35 * 24 * time.Hour
	s, err = scorer.New(d)
	require.NoError(t, err)
	reset := t0.Add(30 * 24 * time.Hour)
	feedTable(t, s, &events.TableStatObserved{Target: "main", Schema: "public", Table: "orders", ObservedAt: last.Add(time.Hour),
		StatsResetAt: &reset, Indexes: idx(map[string]int64{"orders_created_idx": 0, "ip_orders_note_0badc0de": 0, "ip_orders_customer_id_0badc0df": 7})})
	r5, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	for _, p := range r5.Removals {
		require.NotEqual(t, events.RemovalUnused, p.Reason, "%s: only 10 days since the reset", p.IndexName)
	}
}

// An index IndexPilot is building (its build pending, running, or stopped
// by the emergency stop, INVALID meanwhile) is never proposed for removal.
func TestNoRemovalOfAnIndexIndexPilotIsBuilding(t *testing.T) {
	db, d := setup(t)
	ctx := context.Background()
	db.Exec(t, `create table public.broken (x int)`, `insert into public.broken values (0)`)
	// A stopped build leaves an INVALID index of our name until resumed.
	_, err := db.Pool.Exec(ctx, `create index concurrently ip_broken_x_0badc0de on public.broken ((1 / x))`)
	require.Error(t, err)
	s, err := scorer.New(d)
	require.NoError(t, err)
	proposed := func() []string {
		r, err := s.Score(ctx, "main", scorer.Options{})
		require.NoError(t, err)
		var out []string
		for _, p := range r.Removals {
			out = append(out, p.IndexName)
		}
		return out
	}
	require.Contains(t, proposed(), "ip_broken_x_0badc0de", "an INVALID leftover nobody builds is proposed")

	spec := events.IndexSpec{Schema: "public", Table: "broken", Method: "btree", Columns: []string{"x"}}
	recID := events.RecommendationID("main", spec)
	cand := events.CandidateID("main", spec, "v1")
	for _, state := range []string{"stopped", "pending", "running"} {
		_, err = d.Control.Exec(ctx, `insert into indexpilot.recommendations
  (id, target, index_key, schema_name, table_name, index_spec, index_name, state, reason, candidate_id,
   candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
values ($1, 'main', $2, 'public', 'broken', $3, 'ip_broken_x_0badc0de', 'approved', 'apply_mode', $4, $4, 'v1', 90, 1000, '{}')
on conflict do nothing`, recID, spec.Key(), spec, cand)
		require.NoError(t, err)
		_, err = d.Control.Exec(ctx, `insert into indexpilot.builds
  (recommendation_id, target, index_spec, index_name, decision_event_id, candidate_id, state)
values ($1, 'main', $2, 'ip_broken_x_0badc0de', $3, $3, $4)
on conflict (recommendation_id) do update set state = excluded.state`, recID, spec, cand, state)
		require.NoError(t, err)
		require.NotContains(t, proposed(), "ip_broken_x_0badc0de", "proposed while its build is %s", state)
	}
}

// A CREATE INDEX CONCURRENTLY that IndexPilot did not start, held in
// either of its wait phases: the index it creates (INVALID meanwhile) is
// not proposed, nor an INVALID leftover on its table; a duplicate
// elsewhere on the table still is. When the scorer's role cannot see
// which relation another role's build works on (no pg_read_all_stats),
// that build could be on any index: nothing is proposed until it is over.
func TestNoRemovalOfAnIndexSomeoneElseIsBuilding(t *testing.T) {
	for _, c := range []struct {
		hold   pgtest.Hold
		hidden bool
	}{{pgtest.HoldWriters, false}, {pgtest.HoldSnapshots, false}, {pgtest.HoldSnapshots, true}} {
		name := c.hold.Phase()
		if c.hidden {
			name += ", hidden from the scorer"
		}
		t.Run(name, func(t *testing.T) {
			db, d := setup(t)
			ctx := context.Background()
			// A failed build leaves an INVALID leftover on orders.
			_, err := db.Pool.Exec(ctx, "create index concurrently orders_broken on public.orders ((1 / (customer_id - customer_id)))")
			require.Error(t, err)
			db.Exec(t, "create index orders_status_created_dup on public.orders (status, created_at)")
			if c.hidden {
				// The scorer connects as a role without pg_monitor: the
				// superuser's build shows in pg_stat_progress_create_index
				// without its relation.
				role := pgtest.RoleName(t, db, "ipt_scorer_")
				db.Exec(t, "create role "+postgres.Ident(role)+" login")
				d.Config.Targets = []config.Target{{Name: "main", DSN: db.URLAs(t, role)}}
				d.Targets = stage.NewTargets(d.Config.Targets, "scorer")
				t.Cleanup(d.Targets.Close)
			}
			s, err := scorer.New(d)
			require.NoError(t, err)
			proposed := func() map[string]events.RemovalReason {
				r, err := s.Score(ctx, "main", scorer.Options{})
				require.NoError(t, err)
				out := map[string]events.RemovalReason{}
				for _, p := range r.Removals {
					out[p.IndexName] = p.Reason
				}
				return out
			}
			before := map[string]events.RemovalReason{"orders_broken": events.RemovalInvalid,
				"orders_status_created_dup": events.RemovalDuplicate}
			require.Equal(t, before, proposed(), "before the build")

			release := pgtest.HeldBuild(t, db, c.hold, "public", "orders",
				"create index concurrently orders_customer_id_idx on public.orders (customer_id)")
			during := map[string]events.RemovalReason{"orders_status_created_dup": events.RemovalDuplicate}
			if c.hidden {
				during = map[string]events.RemovalReason{}
			}
			require.Equal(t, during, proposed(), "during someone else's build of orders_customer_id_idx (INVALID)")

			require.NoError(t, release())
			require.Equal(t, before, proposed(), "after the build")
		})
	}
}
