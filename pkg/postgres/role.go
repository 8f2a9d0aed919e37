package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// RoleStatements are the statements that create (or update) IndexPilot's
// least-privilege role on a server (docs/connections.md explains each):
//
//   - LOGIN, not a superuser, with CONNECTION LIMIT connLimit: the server
//     itself refuses a connection beyond the budget;
//   - pg_monitor: pg_read_all_stats (other roles' pg_stat_statements
//     texts and pg_stat_activity rows), pg_read_all_settings and
//     pg_stat_scan_tables;
//   - membership in each role of owners (optional): CREATE INDEX and
//     DROP INDEX need ownership of the table, or membership in the owning
//     role; PostgreSQL 17's MAINTAIN privilege does not cover them.
//
// The password, if any, is set separately (never by IndexPilot's SQL).
func RoleStatements(role string, connLimit int, owners []string) []string {
	r := Ident(role)
	limit := strconv.Itoa(connLimit)
	create := "begin if not exists (select 1 from pg_roles where rolname = " + quoteLiteral(role) + ") then create role " + r + " login; end if; end"
	tag := dollarTag(create)
	out := []string{
		Marker("setup") + "do " + tag + " " + create + " " + tag,
		Marker("setup") + "alter role " + r + " login nosuperuser nocreatedb nocreaterole noreplication connection limit " + limit,
		Marker("setup") + "grant pg_monitor to " + r,
	}
	for _, o := range owners {
		out = append(out, Marker("setup")+"grant "+Ident(o)+" to "+r)
	}
	return out
}

// SelectStatements grant role SELECT on the tables of each schema of the
// connected database, present and future: EXPLAIN, which prices the
// what-if indexes, checks the privileges of the statement it plans. Each
// schema also gets USAGE (public has it for PUBLIC already). The default
// privileges cover the tables each of owners will create, or, without
// owners, those the connected role creates. Unlike RoleStatements these
// apply to one database.
func SelectStatements(role string, schemas, owners []string) []string {
	r := Ident(role)
	var out []string
	for _, s := range schemas {
		n := Ident(s)
		out = append(out,
			Marker("setup")+"grant usage on schema "+n+" to "+r,
			Marker("setup")+"grant select on all tables in schema "+n+" to "+r)
		if len(owners) == 0 {
			out = append(out, Marker("setup")+"alter default privileges in schema "+n+" grant select on tables to "+r)
		}
		for _, o := range owners {
			out = append(out, Marker("setup")+"alter default privileges for role "+Ident(o)+" in schema "+n+" grant select on tables to "+r)
		}
	}
	return out
}

// ControlSchemaStatements create IndexPilot's schema in the control
// database, owned by role, unless it exists: `indexpilot init` (or run)
// then creates its tables there as role, which needs no CREATE on the
// database. Like SelectStatements they apply to one database.
func ControlSchemaStatements(role, schema string) []string {
	return []string{Marker("setup") + "create schema if not exists " + Ident(schema) + " authorization " + Ident(role)}
}

// dollarTag is a dollar-quote tag ($ip$, $ip1$ ...) that body does not
// contain, so that a name holding "$$" cannot end the quoted body.
func dollarTag(body string) string {
	tag := "$ip$"
	for i := 1; strings.Contains(body, tag); i++ {
		tag = "$ip" + strconv.Itoa(i) + "$"
	}
	return tag
}

// quoteLiteral quotes s as an SQL string literal (standard_conforming_strings).
func quoteLiteral(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}

// Privileges is what the connected role may do on a server.
type Privileges struct {
	Role      string
	Superuser bool
	// ReadAllStats: member of pg_read_all_stats (pg_monitor includes it).
	ReadAllStats bool
}

// ReadPrivileges reads the connected role's privileges.
func ReadPrivileges(ctx context.Context, q Querier) (Privileges, error) {
	var p Privileges
	err := q.QueryRow(ctx, Marker("probe")+`select current_user, r.rolsuper,
       pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')
  from pg_roles r where r.rolname = current_user`).Scan(&p.Role, &p.Superuser, &p.ReadAllStats)
	if err != nil {
		return p, fmt.Errorf("read the role's privileges: %w", err)
	}
	return p, nil
}

// CollectionWarning is the one-line warning for a role that collects with
// less than it needs ("" when it has what it needs).
func (p Privileges) CollectionWarning() string {
	if p.Superuser || p.ReadAllStats {
		return ""
	}
	return "role " + p.Role + " lacks pg_read_all_stats (grant pg_monitor to " + Ident(p.Role) +
		"): pg_stat_statements shows no other users' query texts, so their statements cannot be scored"
}

// CheckBuildPrivilege returns an error naming the missing privilege when
// the connected role may not create an index on schema.table: CREATE
// INDEX needs ownership of the table (or membership in its owner role);
// PostgreSQL 17's MAINTAIN privilege does not cover it.
func CheckBuildPrivilege(ctx context.Context, q Querier, schema, table string) error {
	var owner string
	var may, create bool
	err := q.QueryRow(ctx, Marker("probe")+`select pg_get_userbyid(c.relowner), pg_has_role(current_user, c.relowner, 'USAGE'),
       has_schema_privilege(current_user, n.oid, 'CREATE')
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = $1 and c.relname = $2`, schema, table).Scan(&owner, &may, &create)
	if err != nil {
		return fmt.Errorf("read the owner of %s: %w", Ident(schema, table), err)
	}
	if !may {
		return fmt.Errorf("%w: the connected role cannot create an index on %s: CREATE INDEX needs ownership of the table "+
			"(grant %s to the IndexPilot role); PostgreSQL 17's MAINTAIN privilege does not cover it",
			ErrPrivilege, Ident(schema, table), Ident(owner))
	}
	if !create {
		return fmt.Errorf("%w: the connected role cannot create an index on %s: CREATE INDEX also needs CREATE on schema %s "+
			"(grant create on schema %s to %s, or to the IndexPilot role)",
			ErrPrivilege, Ident(schema, table), Ident(schema), Ident(schema), Ident(owner))
	}
	return nil
}

// ErrPrivilege is matched by the errors that name a privilege the role
// lacks.
var ErrPrivilege = errPrivilege{}

type errPrivilege struct{}

func (errPrivilege) Error() string { return "missing privilege" }
