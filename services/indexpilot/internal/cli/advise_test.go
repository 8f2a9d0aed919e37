package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// relations lists every relation of the database (schema.name, kind), and
// its schemas and extensions: what advise must leave as it found it.
func relations(t *testing.T, db *pgtest.Database) string {
	t.Helper()
	var out string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `
select concat_ws(E'\n',
  (select string_agg(n.nspname || '.' || c.relname || ':' || c.relkind::text, ',' order by n.nspname, c.relname)
     from pg_class c join pg_namespace n on n.oid = c.relnamespace),
  (select string_agg(nspname, ',' order by nspname) from pg_namespace),
  (select string_agg(extname, ',' order by extname) from pg_extension))`).Scan(&out))
	return out
}

// TestAdviseFromHistory: a database whose pg_stat_statements holds the
// history of a statement scanning a large unindexed table, and nothing
// else set up (no control database, no indexpilot schema). advise prints
// the index that serves it with its evidence, --json gives the same, and
// the database is left as it was.
func TestAdviseFromHistory(t *testing.T) {
	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	db.RequireExtension(t, "hypopg")
	db.Exec(t,
		`create table public.big (id bigint primary key, customer_id int not null, note text)`,
		`insert into public.big select g, g % 20000, md5(g::text) from generate_series(1, 200000) g`,
		`analyze public.big`,
	)
	ctx := context.Background()
	for i := range 60 {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, `select count(note) from public.big where customer_id = $1`, i).Scan(&n))
	}
	before := relations(t, db)

	// A 1 MiB storage budget holds the index back, and advise says so.
	code, out, stderr := runCLI(t, map[string]string{"INDEXPILOT_DATABASE_URL": db.URL, "INDEXPILOT_SCORER_STORAGE_BUDGET_MB": "1"}, "advise")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "no recommendations")
	require.Contains(t, out, "1 more candidates cut some statement's cost but were not chosen: the storage budget (1.0 MiB")

	// The URL from the environment; no control database configured. (The
	// default budget, 10 % of this small database, would not hold the
	// index; a real database is larger.)
	t.Setenv("INDEXPILOT_SCORER_STORAGE_BUDGET_MB", "1024")
	code, out, stderr = runCLI(t, map[string]string{"INDEXPILOT_DATABASE_URL": db.URL}, "advise")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "database "+db.Name+": history since ")
	require.Contains(t, out, "what-if: hypopg")
	require.Regexp(t, `advised\s+public\.big\s+customer_id\s+`, out)
	require.Contains(t, out, `ON "public"."big" USING btree ("customer_id")`)
	require.Regexp(t, `calls 60 .* plan cost .* -> .*count\(note\) from public\.big where customer_id = \$1`, out)
	require.Contains(t, out, "Nothing was created in the database")

	// The URL as the argument, JSON: the same recommendation.
	code, out, stderr = runCLI(t, map[string]string{"INDEXPILOT_DATABASE_URL": ""}, "advise", db.URL, "--json")
	require.Equal(t, 0, code, stderr)
	var adv Advice
	require.NoError(t, json.Unmarshal([]byte(out), &adv), out)
	require.Equal(t, db.Name, adv.Database)
	require.Equal(t, "history:stats_reset", adv.WindowSource, "PostgreSQL 15: the window starts at the view's last reset")
	require.NotNil(t, adv.WindowStart)
	require.Equal(t, "hypopg", adv.WhatIfMethod)
	require.NotEmpty(t, adv.Recommendations)
	r := adv.Recommendations[0]
	require.Equal(t, "big", r.Index.Table)
	require.Equal(t, []string{"customer_id"}, r.Index.Columns)
	require.Contains(t, r.DDL, `USING btree ("customer_id")`)
	require.Greater(t, r.MaxImprovementPct, 50.0)
	var stmt bool
	for _, s := range r.Evidence.Statements {
		if strings.Contains(s.Query, "customer_id = $1") {
			stmt = true
			require.Equal(t, int64(60), s.Calls)
			require.Less(t, s.CostAfter, s.CostBefore)
		}
	}
	require.True(t, stmt, "the scanning statement is in the evidence")

	require.Equal(t, before, relations(t, db), "advise changed the database's relations, schemas or extensions")
	var ipSchema bool
	require.NoError(t, db.Pool.QueryRow(ctx, `select to_regnamespace('indexpilot') is not null`).Scan(&ipSchema))
	require.False(t, ipSchema)

	// Without HypoPG: the pg_stats model, as the scorer does, and how to
	// install HypoPG.
	db.Exec(t, `drop extension hypopg`)
	code, out, stderr = runCLI(t, nil, "advise", db.URL, "--json")
	require.Equal(t, 0, code, stderr)
	adv = Advice{}
	require.NoError(t, json.Unmarshal([]byte(out), &adv), out)
	require.Equal(t, "pg_stats", adv.WhatIfMethod)
	require.NotEmpty(t, adv.Recommendations)
	require.Equal(t, []string{"customer_id"}, adv.Recommendations[0].Index.Columns)
	require.Contains(t, strings.Join(adv.Notes, "\n"), "CREATE EXTENSION hypopg")
}

// TestAdviseErrors: one clear line and a non-zero exit when the database
// cannot answer.
func TestAdviseErrors(t *testing.T) {
	code, _, stderr := runCLI(t, map[string]string{"INDEXPILOT_DATABASE_URL": ""}, "advise")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "no database URL")

	code, _, stderr = runCLI(t, nil, "advise", "postgres://someone:s3cret@127.0.0.1:1/nowhere?connect_timeout=2")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "connect to 127.0.0.1:1/nowhere")
	require.NotContains(t, stderr, "s3cret")
	require.Equal(t, 1, strings.Count(stderr, "\n"), stderr)

	db := pgtest.NewDatabase(t)
	db.RequireExtension(t, "pg_stat_statements")
	// No history: this database's entries are reset (scoped to it), from
	// another database so that the reset itself is not in its history.
	admin := pgtest.Admin(t)
	_, err := admin.Exec(context.Background(),
		`select pg_stat_statements_reset(0, (select oid from pg_database where datname = $1), 0)`, db.Name)
	require.NoError(t, err)
	code, _, stderr = runCLI(t, nil, "advise", db.URL)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "no history: pg_stat_statements holds no statement of database "+db.Name)
	require.Equal(t, 1, strings.Count(stderr, "\n"), stderr)

	db.Exec(t, `drop extension pg_stat_statements`)
	code, _, stderr = runCLI(t, nil, "advise", db.URL)
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, "extension pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements)")
	require.Equal(t, 1, strings.Count(stderr, "\n"), stderr)
}
