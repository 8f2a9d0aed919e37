package executor_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
)

// approveRemoval records p as the gatekeeper does when it approves it: the
// proposal and the queued removal.
func (e *env) approveRemoval(p *events.IndexRemovalProposed) {
	e.t.Helper()
	ctx := context.Background()
	_, err := e.db.Pool.Exec(ctx, `insert into indexpilot.removal_proposals
  (id, target, schema_name, table_name, index_name, state, reason, proposal)
values ($1, $2, $3, $4, $5, 'approved', 'apply_mode', $6)`, p.RemovalID, p.Target, p.Schema, p.Table, p.IndexName, p)
	require.NoError(e.t, err)
	_, err = e.db.Pool.Exec(ctx, `insert into indexpilot.removals (id, target, schema_name, index_name, table_name, definition, reason)
values ($1, $2, $3, $4, $5, $6, $7)`, p.RemovalID, p.Target, p.Schema, p.IndexName, p.Table, p.Definition, string(p.Reason))
	require.NoError(e.t, err)
}

// The removal is re-checked right before the DROP: a duplicate whose twin
// was dropped by someone else after the approval is not dropped; the
// removal and its proposal are superseded with the reason. A duplicate
// whose twin is still there is dropped.
func TestRemovalReCheckedBeforeTheDrop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1000)
	e.db.Exec(t,
		"create index contacts_tenant_a on public.contacts (tenant_id)",
		"create index contacts_tenant_b on public.contacts (tenant_id)",
		"create index contacts_email_a on public.contacts (email)",
		"create index contacts_email_b on public.contacts (email)")
	dup := func(name, twin, col string) *events.IndexRemovalProposed {
		def := "CREATE INDEX " + name + " ON public.contacts USING btree (" + col + ")"
		return &events.IndexRemovalProposed{Target: "main", RemovalID: events.RemovalID("main", "public", name, def),
			Schema: "public", Table: "contacts", IndexName: name, Definition: def, Reason: events.RemovalDuplicate,
			RedundantWith: twin, Index: events.IndexSpec{Schema: "public", Table: "contacts", Method: "btree", Columns: []string{col}}}
	}
	stale, holds := dup("contacts_tenant_b", "contacts_tenant_a", "tenant_id"), dup("contacts_email_b", "contacts_email_a", "email")
	e.approveRemoval(stale)
	e.approveRemoval(holds)
	e.db.Exec(t, "drop index public.contacts_tenant_a") // by someone else, after the approval

	e.start(nil)
	require.Eventually(t, func() bool {
		return e.count("select count(*) from indexpilot.removals where state in ('done','superseded')") == 2
	}, wait, tick)
	require.Equal(t, "superseded", e.scalar("select state from indexpilot.removals where id = $1", stale.RemovalID))
	require.Equal(t, "its twin contacts_tenant_a no longer exists",
		e.scalar("select last_error from indexpilot.removals where id = $1", stale.RemovalID))
	require.Equal(t, int64(1), e.count("select count(*) from pg_class where relname = 'contacts_tenant_b'"), "the stale removal dropped the index")
	require.Equal(t, "superseded", e.scalar("select state from indexpilot.removal_proposals where id = $1", stale.RemovalID))
	require.Equal(t, "superseded", e.scalar(`select outcome from indexpilot.mutation_log
 where action = 'remove' and index_name = 'contacts_tenant_b'`))

	require.Equal(t, "done", e.scalar("select state from indexpilot.removals where id = $1", holds.RemovalID))
	require.Equal(t, int64(0), e.count("select count(*) from pg_class where relname = 'contacts_email_b'"))
	require.Equal(t, int64(1), e.count("select count(*) from pg_class where relname = 'contacts_email_a'"))
}

// A DROP INDEX CONCURRENTLY that times out behind an application
// transaction has already marked the index INVALID. The removal is
// retried, its re-check still holds (the index is INVALID and nobody builds
// it), and the retry finishes the drop: no INVALID index is left (found by
// the chaos suite, long_tx/write during the removal of a duplicate, where
// the retry called the removal stale and left the index INVALID).
func TestRemovalInterruptedByALongTransactionFinishesTheDrop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1000)
	e.db.Exec(t,
		"create index contacts_tenant_a on public.contacts (tenant_id)",
		"create index contacts_tenant_b on public.contacts (tenant_id)")
	def := "CREATE INDEX contacts_tenant_b ON public.contacts USING btree (tenant_id)"
	p := &events.IndexRemovalProposed{Target: "main", RemovalID: events.RemovalID("main", "public", "contacts_tenant_b", def),
		Schema: "public", Table: "contacts", IndexName: "contacts_tenant_b", Definition: def, Reason: events.RemovalDuplicate,
		RedundantWith: "contacts_tenant_a", Index: events.IndexSpec{Schema: "public", Table: "contacts", Method: "btree", Columns: []string{"tenant_id"}}}
	e.approveRemoval(p)

	// The application has read the table in a transaction it keeps open.
	ctx := context.Background()
	app, err := pgx.Connect(ctx, e.db.URL)
	require.NoError(t, err)
	defer app.Close(ctx)
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "select count(*) from public.contacts")
	require.NoError(t, err)

	e.start(func(c *config.Config) { c.Executor.LockTimeout = 300 * time.Millisecond })
	require.Eventually(t, func() bool {
		return e.count(`select count(*) from indexpilot.mutation_log where action = 'remove' and outcome = 'retry'`) > 0
	}, wait, tick)
	require.Equal(t, int64(1), e.count(`select count(*) from pg_index
 where indexrelid = 'public.contacts_tenant_b'::regclass and not indisvalid`), "the interrupted drop left the index INVALID")
	require.NoError(t, tx.Rollback(ctx))

	require.Eventually(t, func() bool {
		return e.count("select count(*) from indexpilot.removals where state not in ('pending','running')") == 1
	}, wait, tick)
	require.Equal(t, "done", e.scalar("select state from indexpilot.removals where id = $1", p.RemovalID))
	require.Equal(t, int64(0), e.count("select count(*) from pg_class where relname = 'contacts_tenant_b'"))
	require.Equal(t, int64(0), e.count("select count(*) from pg_index where not indisvalid"), "an INVALID index left")
	require.Equal(t, int64(1), e.count("select count(*) from pg_class where relname = 'contacts_tenant_a'"), "the twin is kept")
	require.Equal(t, "dropped", e.scalar(`select outcome from indexpilot.mutation_log
 where action = 'remove' and index_name = 'contacts_tenant_b' order by id desc limit 1`))
}
