package build_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/executor/internal/build"
)

// newTable creates public.<table>(id, tenant_id, email, note) with rows rows
// in a fresh database.
func newTable(t *testing.T, table string, rows int) *pgtest.Database {
	t.Helper()
	db := pgtest.NewDatabase(t)
	tbl := postgres.Ident("public", table)
	db.Exec(t,
		"create table "+tbl+" (id bigint primary key, tenant_id int not null, email text not null, note text)",
		"insert into "+tbl+" select g, g % 50, 'user' || g || '@example.com', md5(g::text) from generate_series(1, "+strconv.Itoa(rows)+") g",
		"analyze "+tbl,
	)
	return db
}

func spec(table string, cols ...string) events.IndexSpec {
	return events.IndexSpec{Schema: "public", Table: table, Method: "btree", Columns: cols}
}

// indexes returns name → valid for the indexes of public.table.
func indexes(t *testing.T, db *pgtest.Database, table string) map[string]bool {
	t.Helper()
	list, err := indexdef.Load(context.Background(), db.Pool, "public", table)
	require.NoError(t, err)
	out := map[string]bool{}
	for _, e := range list {
		out[e.Name] = e.Valid
	}
	return out
}

func indexOID(t *testing.T, db *pgtest.Database, name string) uint32 {
	t.Helper()
	var oid uint32
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		"select oid from pg_class where relname = $1 and relnamespace = 'public'::regnamespace", name).Scan(&oid))
	return oid
}

func buildErr(t *testing.T, err error) *build.Error {
	t.Helper()
	require.Error(t, err)
	var be *build.Error
	require.True(t, errors.As(err, &be), "error %v (%T) is not a *build.Error", err, err)
	return be
}

// conn opens a separate session on db for the test to hold locks or
// snapshots with.
func conn(t *testing.T, db *pgtest.Database) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), db.URL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func TestBuildCreatesValidIndexThenFindsIt(t *testing.T) {
	t.Parallel()
	db := newTable(t, "contacts", 20000)
	ctx := context.Background()
	s := spec("contacts", "tenant_id", "email")

	res, err := build.Build(ctx, db.Pool, s, build.Options{})
	require.NoError(t, err)
	require.Equal(t, indexdef.Name(s), res.Name)
	require.False(t, res.AlreadyExisted)
	require.Equal(t, indexdef.CreateSQL(s, res.Name, true), res.DDL)
	require.Contains(t, res.DDL, "CREATE INDEX CONCURRENTLY")
	require.Positive(t, res.SizeBytes)
	require.Positive(t, res.Duration)
	require.Equal(t, map[string]bool{"contacts_pkey": true, res.Name: true}, indexes(t, db, "contacts"))

	again, err := build.Build(ctx, db.Pool, s, build.Options{})
	require.NoError(t, err)
	require.True(t, again.AlreadyExisted, "second build of %s should find the index", s.Key())
	require.Equal(t, res.Name, again.Name)
	require.Empty(t, again.DDL)
	require.Equal(t, map[string]bool{"contacts_pkey": true, res.Name: true}, indexes(t, db, "contacts"))
}

func TestBuildCountsEqualIndexUnderAnotherNameAsExisting(t *testing.T) {
	t.Parallel()
	db := newTable(t, "contacts", 1000)
	db.Exec(t, "create index users_own_idx on public.contacts (tenant_id, email)")
	// Same columns in another order and a prefix are not equal: they must
	// not stop the build of a different spec, and do not count here.
	db.Exec(t, "create index other_order on public.contacts (email, tenant_id)")

	res, err := build.Build(context.Background(), db.Pool, spec("contacts", "tenant_id", "email"), build.Options{})
	require.NoError(t, err)
	require.True(t, res.AlreadyExisted)
	require.Equal(t, "users_own_idx", res.Name)
	require.Contains(t, res.Definition, "(tenant_id, email)")
	require.Len(t, indexes(t, db, "contacts"), 3, "nothing may be built when an equal index exists")
}

func TestBuildDropsInvalidLeftoverAndRebuilds(t *testing.T) {
	t.Parallel()
	db := newTable(t, "contacts", 20000)
	ctx := context.Background()
	s := spec("contacts", "email")
	name := indexdef.Name(s)
	db.Exec(t, "create index "+postgres.Ident(name)+" on public.contacts (email)",
		"update pg_index set indisvalid = false where indexrelid = "+quote(postgres.Ident("public", name))+"::regclass")
	before := indexOID(t, db, name)
	require.Equal(t, false, indexes(t, db, "contacts")[name])

	res, err := build.Build(ctx, db.Pool, s, build.Options{})
	require.NoError(t, err)
	require.False(t, res.AlreadyExisted, "an invalid index is not an existing one")
	require.True(t, res.DroppedLeftover)
	require.Equal(t, name, res.Name)
	require.Equal(t, map[string]bool{"contacts_pkey": true, name: true}, indexes(t, db, "contacts"))
	require.NotEqual(t, before, indexOID(t, db, name), "the leftover should have been replaced")
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func TestBuildNeverTouchesLeftoverBeingBuilt(t *testing.T) {
	t.Parallel()
	db := newTable(t, "contacts", 20000)
	ctx := context.Background()
	s := spec("contacts", "tenant_id")
	name := indexdef.Name(s)

	// An old snapshot makes a CREATE INDEX CONCURRENTLY wait at its last
	// phase, with the index present and INVALID.
	snap := conn(t, db)
	_, err := snap.Exec(ctx, "begin isolation level repeatable read")
	require.NoError(t, err)
	_, err = snap.Exec(ctx, "select count(*) from pg_class")
	require.NoError(t, err)

	other := conn(t, db)
	done := make(chan error, 1)
	go func() {
		_, err := other.Exec(ctx, "create index concurrently "+postgres.Ident(name)+" on public.contacts (tenant_id)")
		done <- err
	}()
	waitPhase(t, db, "contacts", "waiting for old snapshots")
	before := indexOID(t, db, name)

	_, err = build.Build(ctx, db.Pool, s, build.Options{LockTimeout: 300 * time.Millisecond})
	be := buildErr(t, err)
	require.True(t, be.Busy, "a leftover in progress must be reported busy, got %v", be)
	require.Equal(t, postgres.Transient, be.Class)
	require.Equal(t, before, indexOID(t, db, name), "the index being built must not be touched")

	_, err = snap.Exec(ctx, "commit")
	require.NoError(t, err)
	require.NoError(t, <-done)

	res, err := build.Build(ctx, db.Pool, s, build.Options{})
	require.NoError(t, err)
	require.True(t, res.AlreadyExisted)
	require.Equal(t, before, indexOID(t, db, name))
}

// waitPhase waits until a CREATE INDEX on public.table reports phase.
func waitPhase(t *testing.T, db *pgtest.Database, table, phase string) {
	t.Helper()
	require.Eventually(t, func() bool {
		var n int
		err := db.Pool.QueryRow(context.Background(), `select count(*) from pg_stat_progress_create_index
 where relid = to_regclass($1) and phase = $2`, "public."+table, phase).Scan(&n)
		return err == nil && n == 1
	}, 30*time.Second, 20*time.Millisecond, "no CREATE INDEX on %s reached phase %q", table, phase)
}

func TestBuildGivesUpOnLockTimeoutWithoutLeftover(t *testing.T) {
	t.Parallel()
	db := newTable(t, "contacts", 20000)
	ctx := context.Background()
	s := spec("contacts", "email")

	holder := conn(t, db)
	_, err := holder.Exec(ctx, "begin")
	require.NoError(t, err)
	_, err = holder.Exec(ctx, "lock table public.contacts in access exclusive mode")
	require.NoError(t, err)

	_, err = build.Build(ctx, db.Pool, s, build.Options{LockTimeout: 300 * time.Millisecond})
	be := buildErr(t, err)
	require.Equal(t, "55P03", be.SQLState, "want lock timeout, got %v", be)
	require.Equal(t, postgres.Transient, be.Class)
	require.False(t, be.LeftoverRemains)
	// The holder is still in its transaction: the build gave up rather than
	// waiting for it.
	require.Equal(t, byte('T'), holder.PgConn().TxStatus())
	_, err = holder.Exec(ctx, "rollback")
	require.NoError(t, err)
	_, ok := indexes(t, db, "contacts")[indexdef.Name(s)]
	require.False(t, ok, "a build that gave up must leave no index")
}

func TestBuildLockTimeoutMidBuildDropsOrReportsLeftover(t *testing.T) {
	t.Parallel()
	db := newTable(t, "contacts", 20000)
	ctx := context.Background()
	s := spec("contacts", "tenant_id", "id")
	name := indexdef.Name(s)

	// An open writer does not stop CREATE INDEX CONCURRENTLY from taking its
	// lock and creating the (invalid) index, but the build must then wait
	// for it: that wait times out.
	writer := conn(t, db)
	_, err := writer.Exec(ctx, "begin")
	require.NoError(t, err)
	_, err = writer.Exec(ctx, "insert into public.contacts values (-1, 1, 'w@example.com', null)")
	require.NoError(t, err)

	_, err = build.Build(ctx, db.Pool, s, build.Options{LockTimeout: 300 * time.Millisecond})
	be := buildErr(t, err)
	require.Equal(t, "55P03", be.SQLState, "want lock timeout, got %v", be)
	valid, exists := indexes(t, db, "contacts")[name]
	require.False(t, valid)
	t.Logf("mid-build lock timeout: %v (leftover left: %v)", be, exists)
	require.Equal(t, exists, be.LeftoverRemains, "LeftoverRemains must say whether an invalid index is left")

	_, err = writer.Exec(ctx, "commit")
	require.NoError(t, err)

	res, err := build.Build(ctx, db.Pool, s, build.Options{LockTimeout: 5 * time.Second})
	require.NoError(t, err)
	require.Equal(t, exists, res.DroppedLeftover)
	require.Equal(t, map[string]bool{"contacts_pkey": true, name: true}, indexes(t, db, "contacts"))
}

func TestBuildCancelledMidBuildDropsLeftoverAndHeldLockThroughout(t *testing.T) {
	t.Parallel()
	db := newTable(t, "contacts", 20000)
	ctx := context.Background()
	s := spec("contacts", "note")
	name := indexdef.Name(s)

	snap := conn(t, db)
	_, err := snap.Exec(ctx, "begin isolation level repeatable read")
	require.NoError(t, err)
	_, err = snap.Exec(ctx, "select count(*) from pg_class")
	require.NoError(t, err)

	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := build.Build(bctx, db.Pool, s, build.Options{LockTimeout: time.Minute})
		done <- err
	}()
	waitPhase(t, db, "contacts", "waiting for old snapshots")

	// The advisory lock is held while the DDL runs.
	probe := conn(t, db)
	var got bool
	require.NoError(t, probe.QueryRow(ctx, "select pg_try_advisory_lock($1)", build.LockKey("public", "contacts")).Scan(&got))
	require.False(t, got, "the table's build lock must be held during CREATE INDEX")
	valid, exists := indexes(t, db, "contacts")[name]
	require.True(t, exists)
	require.False(t, valid)

	cancel()
	be := buildErr(t, <-done)
	require.Equal(t, postgres.Canceled, be.Class, "got %v", be)
	require.False(t, be.LeftoverRemains)
	_, exists = indexes(t, db, "contacts")[name]
	require.False(t, exists, "the cancelled build's leftover must be dropped")

	require.NoError(t, probe.QueryRow(ctx, "select pg_try_advisory_lock($1)", build.LockKey("public", "contacts")).Scan(&got))
	require.True(t, got, "the build lock must be released after the build")
	_, err = snap.Exec(ctx, "rollback")
	require.NoError(t, err)
}

func TestBuildBusyWhileAnotherBuildHoldsTheTableLock(t *testing.T) {
	t.Parallel()
	db := newTable(t, "contacts", 100)
	ctx := context.Background()
	holder := conn(t, db)
	_, err := holder.Exec(ctx, "select pg_advisory_lock($1)", build.LockKey("public", "contacts"))
	require.NoError(t, err)

	s := spec("contacts", "email")
	_, err = build.Build(ctx, db.Pool, s, build.Options{LockWait: 200 * time.Millisecond})
	be := buildErr(t, err)
	require.True(t, be.Busy)
	require.True(t, errors.Is(err, build.ErrBusy))
	require.Equal(t, postgres.Transient, be.Class)
	_, exists := indexes(t, db, "contacts")[indexdef.Name(s)]
	require.False(t, exists)
}

func TestBuildPermanentErrorForMissingColumn(t *testing.T) {
	t.Parallel()
	db := newTable(t, "contacts", 100)
	s := spec("contacts", "no_such_column")
	_, err := build.Build(context.Background(), db.Pool, s, build.Options{})
	be := buildErr(t, err)
	require.Equal(t, "42703", be.SQLState)
	require.True(t, be.Permanent())
	require.False(t, be.LeftoverRemains)
	_, exists := indexes(t, db, "contacts")[indexdef.Name(s)]
	require.False(t, exists)
}

func TestBuildRejectsInvalidSpecWithoutConnecting(t *testing.T) {
	t.Parallel()
	_, err := build.Build(context.Background(), nil, events.IndexSpec{Schema: "public", Table: "t"}, build.Options{})
	be := buildErr(t, err)
	require.True(t, be.Permanent())
}

func TestBuildLongNamesStayWithinIdentifierLimit(t *testing.T) {
	t.Parallel()
	table := strings.Repeat("t", 63)
	col1 := strings.Repeat("c", 63)
	col2 := "é" + strings.Repeat("d", 60) // multi-byte first rune, 62 bytes
	db := pgtest.NewDatabase(t)
	db.Exec(t,
		"create table "+postgres.Ident("public", table)+" ("+postgres.Ident(col1)+" int, "+postgres.Ident(col2)+" int)",
		"insert into "+postgres.Ident("public", table)+" select g, g from generate_series(1, 1000) g")
	s := spec(table, col1, col2)

	res, err := build.Build(context.Background(), db.Pool, s, build.Options{})
	require.NoError(t, err)
	require.LessOrEqual(t, len(res.Name), indexdef.MaxNameBytes, "name %q is %d bytes", res.Name, len(res.Name))
	require.True(t, strings.HasPrefix(res.Name, indexdef.NamePrefix))
	// PostgreSQL would silently truncate a longer name; the index must
	// exist under exactly the name we computed.
	require.Equal(t, map[string]bool{res.Name: true}, indexes(t, db, table))

	again, err := build.Build(context.Background(), db.Pool, s, build.Options{})
	require.NoError(t, err)
	require.True(t, again.AlreadyExisted)
}

func TestLockKeyIsStableAndPerTable(t *testing.T) {
	t.Parallel()
	require.Equal(t, build.LockKey("public", "a"), build.LockKey("public", "a"))
	require.NotEqual(t, build.LockKey("public", "a"), build.LockKey("public", "b"))
	require.NotEqual(t, build.LockKey("public", "a"), build.LockKey("other", "a"))
}

// newPartitioned creates public.events partitioned by range of id into
// three partitions (one of them itself partitioned by list of kind).
func newPartitioned(t *testing.T) *pgtest.Database {
	t.Helper()
	db := pgtest.NewDatabase(t)
	db.Exec(t,
		"create table public.events (id bigint not null, kind int not null, tenant_id int not null) partition by range (id)",
		"create table public.events_1 partition of public.events for values from (0) to (10000)",
		"create table public.events_2 partition of public.events for values from (10000) to (20000)",
		"create table public.events_3 partition of public.events for values from (20000) to (maxvalue) partition by list (kind)",
		"create table public.events_3a partition of public.events_3 for values in (0)",
		"create table public.events_3b partition of public.events_3 default",
		"insert into public.events select g, g % 3, g % 50 from generate_series(1, 30000) g",
		"analyze public.events")
	return db
}

// attachedTree returns every index in the partition tree of the parent
// index name, with its validity.
func attachedTree(t *testing.T, db *pgtest.Database, name string) map[string]bool {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `select c.relname, x.indisvalid
  from pg_partition_tree(to_regclass($1)) p join pg_class c on c.oid = p.relid join pg_index x on x.indexrelid = p.relid`,
		"public."+postgres.Ident(name))
	require.NoError(t, err)
	out := map[string]bool{}
	for rows.Next() {
		var n string
		var v bool
		require.NoError(t, rows.Scan(&n, &v))
		out[n] = v
	}
	require.NoError(t, rows.Err())
	return out
}

func TestBuildOnPartitionedTableBuildsEachPartitionAndAttaches(t *testing.T) {
	t.Parallel()
	db := newPartitioned(t)
	ctx := context.Background()
	s := spec("events", "tenant_id")
	var started []string
	res, err := build.Build(ctx, db.Pool, s, build.Options{OnStart: func(table string, pid uint32) {
		require.NotZero(t, pid)
		started = append(started, table)
	}})
	require.NoError(t, err)
	require.Equal(t, indexdef.Name(s), res.Name)
	require.False(t, res.AlreadyExisted)
	require.Contains(t, res.DDL, "ON ONLY")
	require.Contains(t, res.DDL, "ATTACH PARTITION")
	require.ElementsMatch(t, []string{"events_1", "events_2", "events_3a", "events_3b"}, started,
		"every leaf partition gets its own concurrent build")

	tree := attachedTree(t, db, res.Name)
	require.Len(t, tree, 6, "parent, the sub-partitioned parent and four leaves: %v", tree)
	for n, v := range tree {
		require.True(t, v, "index %s in the tree is not valid", n)
	}
	used, err := build.UsesIndex(ctx, db.Pool, "SELECT id FROM public.events WHERE tenant_id = $1", "public", res.Name)
	require.NoError(t, err)
	require.True(t, used, "the plan uses the partitions' indexes")

	again, err := build.Build(ctx, db.Pool, s, build.Options{})
	require.NoError(t, err)
	require.True(t, again.AlreadyExisted)

	dropped, err := build.Drop(ctx, db.Pool, "public", res.Name, build.DropOptions{})
	require.NoError(t, err)
	require.True(t, dropped.Existed)
	require.Empty(t, attachedTree(t, db, res.Name), "dropping the parent index drops the whole tree")
}

func TestBuildOnPartitionedTableResumesAfterInterruption(t *testing.T) {
	t.Parallel()
	db := newPartitioned(t)
	ctx := context.Background()
	s := spec("events", "kind", "tenant_id")
	name := indexdef.Name(s)

	// An earlier run built one partition and created the parent index, then
	// died before attaching anything.
	first, err := build.Build(ctx, db.Pool, spec("events_1", "kind", "tenant_id"), build.Options{})
	require.NoError(t, err)
	db.Exec(t, "create index "+postgres.Ident(name)+" on only public.events (kind, tenant_id)")
	before := indexOID(t, db, first.Name)
	parent := indexOID(t, db, name)
	require.False(t, indexes(t, db, "events")[name])

	res, err := build.Build(ctx, db.Pool, s, build.Options{})
	require.NoError(t, err)
	require.Equal(t, name, res.Name)
	require.Equal(t, parent, indexOID(t, db, name), "the parent index is completed, not rebuilt")
	require.Equal(t, before, indexOID(t, db, first.Name), "the built partition's index is reused")
	require.True(t, indexes(t, db, "events")[name])
	tree := attachedTree(t, db, name)
	require.Len(t, tree, 6)
	require.Contains(t, tree, first.Name)
}

func TestUsesIndexPlansWithoutRunning(t *testing.T) {
	t.Parallel()
	db := newTable(t, "contacts", 20000)
	ctx := context.Background()
	s := spec("contacts", "email")
	res, err := build.Build(ctx, db.Pool, s, build.Options{})
	require.NoError(t, err)
	used, err := build.UsesIndex(ctx, db.Pool, "SELECT id FROM public.contacts WHERE email = $1", "public", res.Name)
	require.NoError(t, err)
	require.True(t, used)
	used, err = build.UsesIndex(ctx, db.Pool, "SELECT id FROM public.contacts WHERE note = $1", "public", res.Name)
	require.NoError(t, err)
	require.False(t, used)
	// A DELETE is planned, never run.
	used, err = build.UsesIndex(ctx, db.Pool, "DELETE FROM public.contacts WHERE email = $1", "public", res.Name)
	require.NoError(t, err)
	require.True(t, used)
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from public.contacts").Scan(&n))
	require.Equal(t, 20000, n)
	_, err = build.UsesIndex(ctx, db.Pool, "SELECT nope FROM public.contacts", "public", res.Name)
	require.Error(t, err)
}

func TestDropRecordsDefinitionAndRefusesProtected(t *testing.T) {
	t.Parallel()
	db := newTable(t, "contacts", 1000)
	ctx := context.Background()
	db.Exec(t, "create index users_email on public.contacts (email) where note is not null",
		"create unique index users_uniq on public.contacts (email, id)")

	var recorded string
	res, err := build.Drop(ctx, db.Pool, "public", "users_email", build.DropOptions{RefuseProtected: true,
		BeforeDrop: func(_ context.Context, table, def string) error { recorded = def; return nil }})
	require.NoError(t, err)
	require.True(t, res.Existed)
	require.Equal(t, "contacts", res.Table)
	require.Equal(t, "CREATE INDEX users_email ON public.contacts USING btree (email) WHERE (note IS NOT NULL)", res.Definition)
	require.Equal(t, res.Definition, recorded)
	require.Contains(t, res.DDL, "DROP INDEX CONCURRENTLY")
	_, ok := indexes(t, db, "contacts")["users_email"]
	require.False(t, ok)

	again, err := build.Drop(ctx, db.Pool, "public", "users_email", build.DropOptions{})
	require.NoError(t, err)
	require.False(t, again.Existed)

	for _, name := range []string{"users_uniq", "contacts_pkey"} {
		_, err = build.Drop(ctx, db.Pool, "public", name, build.DropOptions{RefuseProtected: true})
		be := buildErr(t, err)
		require.True(t, be.Permanent())
		require.ErrorIs(t, err, build.ErrProtected)
		_, ok = indexes(t, db, "contacts")[name]
		require.True(t, ok)
	}
}
