package cli

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// TestSetupRole: setup-role on a throwaway database creates a login role
// that is not a superuser, with pg_monitor, the budget's connection limit,
// SELECT on the schema's tables (present and future) and membership of the
// owner role; a second run leaves the same state; --dry-run creates nothing;
// connected as the role, the collector's privilege check passes and a build
// on a table it does not own is refused up front.
func TestSetupRole(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	// Roles are cluster-wide and the server is shared: unique names,
	// dropped (with their privileges in the database) when the test ends.
	role, owner := pgtest.RoleName(t, db, "ipt_role_"), pgtest.RoleName(t, db, "ipt_owner_")
	db.Exec(t,
		"create role "+postgres.Ident(owner)+" nologin",
		"create table public.orders (id bigint primary key, customer_id int not null)",
		"alter table public.orders owner to "+postgres.Ident(owner),
		"create table public.other (id bigint primary key, v int)",
	)
	env := map[string]string{"INDEXPILOT_DATABASE_URL": db.URL}
	args := []string{"setup-role", "--role", role, "--owner", owner}

	code, out, stderr := runCLI(t, env, append(args, "--dry-run")...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "/* indexpilot:setup */ grant pg_monitor to "+postgres.Ident(role))
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, "select count(*) from pg_roles where rolname = $1", role).Scan(&n))
	require.Zero(t, n, "--dry-run created the role")

	state := func() string {
		t.Helper()
		var s string
		require.NoError(t, db.Pool.QueryRow(ctx, `select concat_ws(' ', r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolconnlimit,
       pg_has_role(r.oid, 'pg_monitor', 'MEMBER'), pg_has_role(r.oid, $2::name, 'MEMBER'),
       has_table_privilege(r.oid, 'public.other', 'SELECT'), has_table_privilege(r.oid, 'public.orders', 'SELECT'),
       (select count(*) from pg_auth_members m where m.member = r.oid))
  from pg_roles r where r.rolname = $1`, role, owner).Scan(&s))
		return s
	}
	limit := config.Default().Connections.PerServer + roleBuildRoom + roleCLIRoom
	want := fmt.Sprintf("t f f %d t t t t 2", limit)
	code, out, stderr = runCLI(t, env, args...)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, `\password `+postgres.Ident(role))
	require.Equal(t, want, state())
	code, _, stderr = runCLI(t, env, args...)
	require.Equal(t, 0, code, stderr)
	require.Equal(t, want, state(), "a second run changed the state")

	// A table the owner creates later is readable too (default privileges).
	db.Exec(t, "grant create on schema public to "+postgres.Ident(owner))
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "set local role "+postgres.Ident(owner))
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "create table public.later (id int)")
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	var later bool
	require.NoError(t, db.Pool.QueryRow(ctx, "select has_table_privilege($1, 'public.later', 'SELECT')", role).Scan(&later))
	require.True(t, later)

	// Connected as the role.
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	u.User = url.User(role)
	conn, err := pgx.Connect(ctx, u.String())
	require.NoError(t, err)
	defer conn.Close(ctx)
	p, err := postgres.ReadPrivileges(ctx, conn)
	require.NoError(t, err)
	require.True(t, p.ReadAllStats)
	require.False(t, p.Superuser)
	require.Empty(t, p.CollectionWarning())
	// Owning the table is not enough: CREATE INDEX also needs CREATE on
	// its schema. The check names it, and the server agrees.
	db.Exec(t, "revoke create on schema public from "+postgres.Ident(owner))
	err = postgres.CheckBuildPrivilege(ctx, conn, "public", "orders")
	require.ErrorIs(t, err, postgres.ErrPrivilege)
	require.Contains(t, err.Error(), "needs CREATE on schema")
	_, err = conn.Exec(ctx, "create index on public.orders (id)")
	require.Error(t, err, "the server let the role index a table in a schema it may not create in")
	db.Exec(t, "grant create on schema public to "+postgres.Ident(owner))
	require.NoError(t, postgres.CheckBuildPrivilege(ctx, conn, "public", "orders"))
	err = postgres.CheckBuildPrivilege(ctx, conn, "public", "other")
	require.ErrorIs(t, err, postgres.ErrPrivilege)
	require.Contains(t, err.Error(), "CREATE INDEX needs ownership of the table")
	_, err = conn.Exec(ctx, "create index on public.other (v)")
	require.Error(t, err, "the server let the role index a table it does not own")
	_, err = conn.Exec(ctx, "select count(*) from public.other")
	require.NoError(t, err)

	// The role itself cannot create roles: setup-role says what is missing.
	code, _, stderr = runCLI(t, map[string]string{"INDEXPILOT_DATABASE_URL": u.String()}, "setup-role", "--role", role+"_x")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "lacks CREATEROLE")
	// A superuser owner or role is refused, and nothing changes.
	code, _, stderr = runCLI(t, env, "setup-role", "--role", role, "--owner", "postgres")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "is a superuser")
	code, _, stderr = runCLI(t, env, "setup-role", "--role", "postgres")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "is an existing superuser")
	require.Equal(t, want, state())
	code, _, stderr = runCLI(t, env, "setup-role", "--connection-limit", "0")
	require.Equal(t, 2, code)
	require.Contains(t, stderr, "less than 1")
}
