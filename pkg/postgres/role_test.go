package postgres_test

import (
	"context"
	"testing"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// TestRoleStatementsQuoteAnyName: a role and schema whose names hold
// quotes and "$$" (which would end an untagged DO body) are created and
// granted exactly as named, nothing else.
func TestRoleStatementsQuoteAnyName(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	role := pgtest.RoleName(t, db, `ip$$"x'$ip$`)
	schema := `s"$$'` + role[len(role)-8:]
	db.Exec(t, "create schema "+postgres.Ident(schema), "create table "+postgres.Ident(schema, "t")+" (id int)")
	for range 2 { // idempotent
		for _, q := range append(postgres.RoleStatements(role, 4, nil), postgres.SelectStatements(role, []string{schema}, nil)...) {
			if _, err := db.Pool.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	var limit int
	var sel bool
	if err := db.Pool.QueryRow(ctx, "select rolconnlimit, has_table_privilege(oid, $2, 'SELECT') from pg_roles where rolname = $1",
		role, postgres.Ident(schema, "t")).Scan(&limit, &sel); err != nil {
		t.Fatal(err)
	}
	if limit != 4 || !sel {
		t.Fatalf("role %q: connection limit %d, SELECT %v; want 4, true", role, limit, sel)
	}
}
