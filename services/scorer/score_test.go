package scorer_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bytesize"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// feed stores query statistics through the scorer's own handler.
func feed(t *testing.T, s *scorer.Scorer, stats ...*events.QueryStatObserved) {
	t.Helper()
	for _, q := range stats {
		env, err := events.Wrap(q, "test", "", q.WindowEnd)
		require.NoError(t, err)
		_, err = s.HandleQueryStat(context.Background(), env, q)
		require.NoError(t, err)
	}
}

func feedTable(t *testing.T, s *scorer.Scorer, ts *events.TableStatObserved) {
	t.Helper()
	env, err := events.Wrap(ts, "test", "", ts.ObservedAt)
	require.NoError(t, err)
	_, err = s.HandleTableStat(context.Background(), env, ts)
	require.NoError(t, err)
}

func columnsOf(r *scorer.Report) [][]string {
	var out [][]string
	for _, c := range r.Chosen {
		out = append(out, c.Index.Columns)
	}
	return out
}

var end = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestReportCountsWhatCannotBeScored(t *testing.T) {
	_, d := setup(t)
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s,
		querystat("1", "SELECT id, status FROM orders WHERE customer_id = $1", 500, end),
		querystat("2", "INSERT INTO orders (id, customer_id, status, created_at) VALUES ($1, $2, $3, $4)", 10, end),
		querystat("3", "SELEC broken", 10, end),
		querystat("4", "SELECT id FROM orders WHERE created_at > $1 AND customer_id = $2::text", 10, end),
	)
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, 4, r.Statements)
	require.Equal(t, 2, r.Unparsed, "the INSERT and the syntax error")
	require.Equal(t, 1, r.NotEvaluable, "there is no operator int = text")
	require.Equal(t, [][]string{{"customer_id"}}, columnsOf(r))
	c := r.Chosen[0]
	require.Equal(t, "v2", c.FormulaVersion)
	require.Greater(t, c.BenefitCost, 0.0)
	require.Greater(t, c.BuildCost, 0.0, "the build is charged")
	require.InDelta(t, c.BenefitCost-c.WriteOverheadCost-c.BuildCost, c.NetBenefit, 0.02)
	require.Greater(t, c.TimeSavedMsPerHour, 0.0)
	require.Greater(t, r.StorageBudgetBytes, int64(0))
	require.LessOrEqual(t, r.ChosenBytes, r.StorageBudgetBytes)
	require.Less(t, r.WorkloadCostAfter, r.WorkloadCostBefore)
	require.Greater(t, r.WhatIfCalls, 0)
}

func TestWriteOverheadFromTableStatistics(t *testing.T) {
	_, d := setup(t)
	d.Config.Scorer.StorageBudgetMB = 1024 // the note index is larger than 10 % of this small database
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s, querystat("1", "SELECT id FROM orders WHERE note = $1", 20, end))
	// Observations an hour apart: a billion inserts in between, then a
	// reset (the counter went back) and a few more.
	for i, ins := range []int64{1_000, 1_000_000_000, 5} {
		feedTable(t, s, &events.TableStatObserved{Target: "main", Schema: "public", Table: "orders",
			ObservedAt: end.Add(-2*time.Hour + time.Duration(i)*time.Hour), Inserts: ins, LiveRows: 50000})
	}
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Empty(t, r.Chosen, "a rarely read column of a table written a billion times an hour is not worth an index")
	require.Equal(t, 1, r.Proven, "the index itself does cut the statement's cost")

	r, err = s.Score(context.Background(), "main", scorer.Options{FormulaVersion: "v1"})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"note"}}, columnsOf(r), "formula v1 does not charge writes")
	require.Equal(t, "v1", r.Chosen[0].FormulaVersion)
	require.Zero(t, r.Chosen[0].WriteOverheadCost)
	require.Equal(t, events.CandidateID("main", r.Chosen[0].Index, "v1"), r.Chosen[0].CandidateID)

	_, err = s.Score(context.Background(), "main", scorer.Options{FormulaVersion: "v9"})
	require.ErrorContains(t, err, "unknown formula")
}

func TestStorageBudgetAndPerTableCap(t *testing.T) {
	_, d := setup(t)
	d.Config.Scorer.MaxIndexesPerTable = 1
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s,
		querystat("1", "SELECT id FROM orders WHERE customer_id = $1", 500, end),
		querystat("2", "SELECT id FROM orders WHERE note = $1", 400, end),
	)
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Len(t, r.Chosen, 1, "one index per table")
	require.Len(t, r.Held, 1, "the other is held by the cap, not dropped")
	require.Equal(t, "max_indexes_per_table", r.Held[0].HeldReason)
	require.NotEqual(t, r.Chosen[0].Index.Columns, r.Held[0].Index.Columns)

	d.Config.Scorer.MaxIndexesPerTable = 3
	d.Config.Scorer.StorageBudgetMB = 1
	s, err = scorer.New(d)
	require.NoError(t, err)
	r, err = s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, int64(1<<20), r.StorageBudgetBytes)
	require.LessOrEqual(t, r.ChosenBytes, r.StorageBudgetBytes)
	require.Less(t, len(r.Chosen), 2, "both indexes do not fit in 1 MiB")
	// Never a silent drop: what did not fit is held, with its size and
	// the budget, and published for the gatekeeper to list.
	require.Len(t, r.Held, 2-len(r.Chosen))
	for _, h := range r.Held {
		require.Equal(t, "storage_budget", h.HeldReason)
		require.Greater(t, h.EstimatedSizeBytes, int64(0))
		require.Contains(t, h.HeldDetail, "estimated size "+bytesize.Human(h.EstimatedSizeBytes)+" does not fit the storage budget: ")
		require.Contains(t, h.HeldDetail, " of 1.0 MiB already used by this run's choices")
		require.Greater(t, h.NetBenefit, 0.0, "it pays for itself")
	}
	require.Len(t, r.Candidates(), 2)
}

func TestGenomeExcludesFields(t *testing.T) {
	db, d := setup(t)
	db.Exec(t,
		`insert into indexpilot.genome_catalog (target, schema_name, table_name, field_name, field_type, is_indexable)
		 values ('main', 'public', 'orders', 'customer_id', 'integer', false)`,
		`insert into indexpilot.expression_profile (target, tenant_id, schema_name, table_name, field_name, is_enabled)
		 values ('main', 't1', 'public', 'orders', 'note', false), ('main', 't2', 'public', 'orders', 'note', false),
		        ('main', 't1', 'public', 'orders', 'created_at', false), ('main', 't2', 'public', 'orders', 'created_at', true)`)
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s,
		querystat("1", "SELECT id FROM orders WHERE customer_id = $1", 500, end),
		querystat("2", "SELECT id FROM orders WHERE note = $1", 400, end),
		querystat("3", "SELECT id FROM orders WHERE created_at = $1", 300, end),
	)
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"created_at"}}, columnsOf(r),
		"customer_id is not indexable, note is disabled for every tenant, created_at only for one")

	// schema_config.yaml marks created_at not indexable too.
	p := filepath.Join(t.TempDir(), "schema_config.yaml")
	require.NoError(t, os.WriteFile(p, []byte("tables:\n  orders:\n    fields:\n      created_at: {indexable: false}\n"), 0o600))
	d.Config.Scorer.SchemaConfig = p
	s, err = scorer.New(d)
	require.NoError(t, err)
	r, err = s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Empty(t, r.Chosen)
}

func TestStatisticsFallbackWithoutHypoPG(t *testing.T) {
	db, d := setup(t)
	db.Exec(t, "drop extension hypopg")
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s, querystat("1", "SELECT id, status FROM orders WHERE customer_id = $1", 500, end))
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, scorer.WhatIfStats, r.WhatIfMethod)
	require.Equal(t, [][]string{{"customer_id"}}, columnsOf(r))
	c := r.Chosen[0]
	require.Equal(t, scorer.WhatIfStats, c.WhatIfMethod)
	require.NotEmpty(t, c.Notes, "the evidence says the costs after are a model")
	require.Contains(t, c.Notes[0], "pg_stats")
	ev := c.Statements[0]
	require.Less(t, ev.CostAfter, ev.CostBefore/10, "5000 customers: one in 5000 rows")
	require.Greater(t, c.EstimatedSizeBytes, int64(0))
}

func TestReplayWindowAndDeterminism(t *testing.T) {
	_, d := setup(t)
	d.Config.Scorer.StorageBudgetMB = 1024
	s, err := scorer.New(d)
	require.NoError(t, err)
	early := end.Add(-48 * time.Hour)
	feed(t, s,
		querystat("1", "SELECT id FROM orders WHERE note = $1", 500, early),
		querystat("2", "SELECT id, status FROM orders WHERE customer_id = $1", 500, end),
	)
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"customer_id"}}, columnsOf(r), "the 24 h window ends at the latest observation")

	r, err = s.Score(context.Background(), "main", scorer.Options{Since: early.Add(-time.Hour)})
	require.NoError(t, err)
	require.ElementsMatch(t, [][]string{{"customer_id"}, {"note"}}, columnsOf(r), "--since reaches back")

	r2, err := s.Score(context.Background(), "main", scorer.Options{Since: early.Add(-time.Hour)})
	require.NoError(t, err)
	require.Equal(t, r.Payloads(), r2.Payloads(), "the same events give the same candidates")

	r, err = s.Score(context.Background(), "main", scorer.Options{Until: early})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"note"}}, columnsOf(r))
	require.Equal(t, early, r.WindowEnd)
}

func TestExpressionCandidateProvenByThePlanner(t *testing.T) {
	db, d := setup(t)
	db.Exec(t, `create table public.users (id int primary key, email varchar(200) not null)`,
		`insert into public.users select g, 'User' || g || '@Example.com' from generate_series(1, 30000) g`,
		`analyze public.users`)
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s, querystat("1", "SELECT id FROM users WHERE lower(email) = $1", 500, end))
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Len(t, r.Chosen, 1)
	c := r.Chosen[0]
	require.Empty(t, c.Index.Columns)
	require.Equal(t, []events.IndexExpr{{Function: "lower", Column: "email"}}, c.Index.Expressions)
	// Without statistics on the expression the planner assumes 0.5 % of
	// the rows match, so the gain is smaller than for a unique column.
	require.Greater(t, c.MaxImprovementPct, 50.0)

	// Once the index exists, nothing is proposed for the statement.
	db.Exec(t, `create index users_lower_email on public.users (lower(email))`)
	r, err = s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Empty(t, r.Chosen)
}

func TestPartialCandidateForMostlyNullColumn(t *testing.T) {
	db, d := setup(t)
	db.Exec(t, `alter table public.orders add column shipped_at timestamptz`,
		`update public.orders set shipped_at = created_at where id % 100 = 0`,
		`analyze public.orders`)
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s, querystat("1", "SELECT id FROM orders WHERE shipped_at IS NOT NULL ORDER BY shipped_at LIMIT $1", 500, end))
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Len(t, r.Chosen, 1, "one index: the other variant saves nothing more")
	c := r.Chosen[0]
	require.Equal(t, []string{"shipped_at"}, c.Index.Columns)
	require.Equal(t, "(shipped_at IS NOT NULL)", c.Index.Predicate, "the partial index is smaller and serves the statement as well")
}

// TestDefaultBudgetFitsASmallDatabase: with the default settings, an index
// larger than 10 % of a small database is still chosen — the budget has a
// floor (scorer.storage_budget_min_mb) — instead of silently vanishing.
func TestDefaultBudgetFitsASmallDatabase(t *testing.T) {
	db, d := setup(t)
	s, err := scorer.New(d)
	require.NoError(t, err)
	feed(t, s, querystat("1", "SELECT id FROM orders WHERE note = $1", 20, end))
	var dbSize int64
	require.NoError(t, db.Pool.QueryRow(context.Background(), "select pg_database_size(current_database())").Scan(&dbSize))
	r, err := s.Score(context.Background(), "main", scorer.Options{})
	require.NoError(t, err)
	require.Equal(t, [][]string{{"note"}}, columnsOf(r))
	require.Greater(t, r.Chosen[0].EstimatedSizeBytes, dbSize/20, "a sizeable index for this database")
	require.Equal(t, int64(256<<20), r.StorageBudgetBytes, "the floor, not 10 %% of %d bytes", dbSize)
	require.Empty(t, r.Held)
}
