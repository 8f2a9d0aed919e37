package executor_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
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
