package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// marker starts every statement the demo itself sends (schema, data,
// checks) so that the collector leaves them out. The workload statements
// carry no marker: they play the application.
var marker = postgres.Marker("demo")

// demoComment marks the tables LoadSchema created; it only ever drops
// tables carrying it.
const demoComment = "indexpilot demo data"

// Scale is how many rows LoadSchema generates per table.
type Scale struct {
	Tenants       int
	Organizations int
	Contacts      int
	Interactions  int
}

// DefaultScale is the demo's size: tens of thousands of rows, loaded in a
// few seconds, large enough that sequential scans are visibly slower than
// index scans.
var DefaultScale = Scale{Tenants: 50, Organizations: 2_000, Contacts: 40_000, Interactions: 120_000}

// SmallScale is for tests: the same shape, loaded in well under a second.
var SmallScale = Scale{Tenants: 5, Organizations: 200, Contacts: 3_000, Interactions: 9_000}

// Validate reports a scale that cannot produce consistent data.
func (s Scale) Validate() error {
	if s.Tenants < 1 || s.Organizations < 1 || s.Contacts < 1 || s.Interactions < 1 {
		return fmt.Errorf("invalid demo scale %+v: every table needs at least one row", s)
	}
	if s.Contacts > 100_000_000 || s.Interactions > 100_000_000 || s.Organizations > 100_000_000 || s.Tenants > 1_000_000 {
		return fmt.Errorf("invalid demo scale %+v: too large for a demo", s)
	}
	return nil
}

// Tables lists the demo tables in load order.
func Tables() []string { return []string{"tenants", "organizations", "contacts", "interactions"} }

// Value lists shared by the SQL generator and the workload's arguments.
var (
	plans       = []string{"free", "team", "business", "enterprise"}
	industries  = []string{"software", "retail", "finance", "healthcare", "logistics", "education", "energy", "media", "manufacturing", "hospitality", "legal", "construction"}
	countries   = []string{"US", "DE", "FR", "GB", "NL", "ES", "BR", "JP"}
	orgWords1   = []string{"Blue", "Swift", "Northern", "Bright", "Silver", "Golden", "Green", "Prime", "Urban", "Summit"}
	orgWords2   = []string{"Systems", "Labs", "Partners", "Works", "Logistics", "Foods", "Capital", "Health", "Media", "Energy"}
	firstNames  = []string{"Ada", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas", "Kara", "Liam", "Mia", "Noah", "Olga", "Paul", "Quinn", "Rosa", "Sam", "Tara"}
	lastNames   = []string{"Adams", "Baker", "Clark", "Diaz", "Evans", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Klein", "Lopez", "Martin", "Nagy", "Olsen", "Petit", "Quist", "Rossi", "Schmidt", "Tanaka", "Ueda", "Vogel", "Weber", "Xu", "Young", "Zimmer", "Moreau", "Novak", "Silva", "Kowalski"}
	statuses    = []string{"active", "lead", "churned", "blocked"}
	kinds       = []string{"email", "call", "meeting", "note", "demo"}
	topics      = []string{"pricing", "onboarding", "renewal", "support ticket", "feature request", "invoice", "security review", "training"}
	baseContact = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	baseEvent   = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Spans of the generated timestamps, in seconds.
const (
	contactSpan = 3 * 365 * 86400
	eventSpan   = 2 * 365 * 86400
)

// hashPrime is the modulus of mix: 2^31-1.
const hashPrime = 2147483647

// mix is a deterministic integer hash used to generate the data, written
// identically in Go and in SQL (mixSQL) so that the workload can compute
// which rows exist (a contact's tenant and e-mail) without reading them.
// All intermediate values stay below 2^63 for x < 10^9.
func mix(x, salt int64) int64 {
	v := (x*1000003 + salt*7919) % hashPrime
	v = v * v % hashPrime
	return (v*48271 + salt) % hashPrime
}

// mixSQL is mix as a SQL bigint expression over the expression x.
func mixSQL(x string, salt int64) string {
	a := fmt.Sprintf("((%s)::bigint * 1000003 + %d) %% %d", x, salt*7919, hashPrime)
	return fmt.Sprintf("(((((%[1]s) * (%[1]s)) %% %[2]d) * 48271 + %[3]d) %% %[2]d)", a, hashPrime, salt)
}

// orgOfContact is the organization of contact c.
func orgOfContact(s Scale, c int64) int64 { return 1 + mix(c, 11)%int64(s.Organizations) }

// tenantOfOrg is the tenant of organization o: skewed, tenant 1 largest.
func tenantOfOrg(s Scale, o int64) int64 {
	r := mix(o, 1) % 10000
	return 1 + r*r*int64(s.Tenants)/100_000_000
}

func tenantOfOrgSQL(s Scale, o string) string {
	r := fmt.Sprintf("(%s %% 10000)", mixSQL(o, 1))
	return fmt.Sprintf("(1 + %[1]s * %[1]s * %[2]d / 100000000)", r, s.Tenants)
}

// contactEmail is the e-mail address of contact c.
func contactEmail(s Scale, c int64) string {
	first := strings.ToLower(firstNames[mix(c, 12)%int64(len(firstNames))])
	last := strings.ToLower(lastNames[mix(c, 13)%int64(len(lastNames))])
	return first + "." + last + "." + strconv.FormatInt(c, 10) + "@org" + strconv.FormatInt(orgOfContact(s, c), 10) + ".example.com"
}

// pick is SQL for list[mix(x, salt) % len(list)].
func pick(list []string, x string, salt int64) string {
	quoted := make([]string, len(list))
	for i, v := range list {
		quoted[i] = "'" + strings.ReplaceAll(v, "'", "''") + "'"
	}
	return fmt.Sprintf("(array[%s])[1 + (%s %% %d)::int]", strings.Join(quoted, ","), mixSQL(x, salt), len(list))
}

func tsSQL(base time.Time, x string, salt int64, span int) string {
	return fmt.Sprintf("timestamptz '%s' + make_interval(secs => %s %% %d)", base.Format(time.RFC3339), mixSQL(x, salt), span)
}

const ddl = `
create table public.tenants (
  id          bigint primary key,
  name        text not null,
  plan        text not null,
  created_at  timestamptz not null
);
create table public.organizations (
  id             bigint primary key,
  tenant_id      bigint not null,
  name           text not null,
  industry       text not null,
  country        text not null,
  employee_count integer not null,
  created_at     timestamptz not null
);
create table public.contacts (
  id              bigint primary key,
  tenant_id       bigint not null,
  organization_id bigint not null,
  email           text not null,
  first_name      text not null,
  last_name       text not null,
  status          text not null,
  created_at      timestamptz not null,
  updated_at      timestamptz not null
);
create table public.interactions (
  id          bigint primary key,
  tenant_id   bigint not null,
  contact_id  bigint not null,
  kind        text not null,
  occurred_at timestamptz not null,
  duration_s  integer not null,
  notes       text
);
comment on table public.tenants is '` + demoComment + `';
comment on table public.organizations is '` + demoComment + `';
comment on table public.contacts is '` + demoComment + `';
comment on table public.interactions is '` + demoComment + `';
`

// loadSQL returns the INSERT … SELECT generate_series statement per table.
// Nested subqueries with OFFSET 0 keep each hash computed once per row.
func loadSQL(s Scale) map[string]string {
	return map[string]string{
		"tenants": fmt.Sprintf(`insert into public.tenants (id, name, plan, created_at)
select g, 'Tenant ' || g, %s, timestamptz '2021-01-01T00:00:00Z' + make_interval(days => g::int)
from generate_series(1::bigint, %d) g`, pick(plans, "g", 31), s.Tenants),

		"organizations": fmt.Sprintf(`insert into public.organizations (id, tenant_id, name, industry, country, employee_count, created_at)
select g, %s, %s || ' ' || %s || ' ' || g, %s, %s, 1 + (%s %% 5000)::int, %s
from generate_series(1::bigint, %d) g`,
			tenantOfOrgSQL(s, "g"), pick(orgWords1, "g", 2), pick(orgWords2, "g", 3),
			pick(industries, "g", 4), pick(countries, "g", 5), mixSQL("g", 6),
			tsSQL(baseContact, "g", 7, contactSpan), s.Organizations),

		"contacts": fmt.Sprintf(`insert into public.contacts (id, tenant_id, organization_id, email, first_name, last_name, status, created_at, updated_at)
select g, tenant_id, org, lower(first_name) || '.' || lower(last_name) || '.' || g || '@org' || org || '.example.com',
       first_name, last_name,
       case when st < 60 then 'active' when st < 85 then 'lead' when st < 95 then 'churned' else 'blocked' end,
       created_at, created_at + make_interval(secs => %s %% 31536000)
from (
  select g, org, %s as tenant_id, %s as first_name, %s as last_name, %s %% 100 as st, %s as created_at
  from (select g, 1 + %s %% %d as org from generate_series(1::bigint, %d) g offset 0) a
  offset 0
) b`,
			mixSQL("g", 16),
			tenantOfOrgSQL(s, "org"), pick(firstNames, "g", 12), pick(lastNames, "g", 13), mixSQL("g", 14),
			tsSQL(baseContact, "g", 15, contactSpan),
			mixSQL("g", 11), s.Organizations, s.Contacts),

		"interactions": fmt.Sprintf(`insert into public.interactions (id, tenant_id, contact_id, kind, occurred_at, duration_s, notes)
select g, %s, contact_id, %s, %s, (%s %% 3600)::int, %s || ' follow-up #' || g
from (
  select g, contact_id, 1 + %s %% %d as org
  from (select g, 1 + %s %% %d as contact_id from generate_series(1::bigint, %d) g offset 0) a
  offset 0
) b`,
			tenantOfOrgSQL(s, "org"), pick(kinds, "g", 22), tsSQL(baseEvent, "g", 23, eventSpan),
			mixSQL("g", 24), pick(topics, "g", 25),
			mixSQL("contact_id", 11), s.Organizations,
			mixSQL("g", 21), s.Contacts, s.Interactions),
	}
}

// rowCount returns the configured row count of a demo table.
func (s Scale) rowCount(table string) int {
	switch table {
	case "tenants":
		return s.Tenants
	case "organizations":
		return s.Organizations
	case "contacts":
		return s.Contacts
	case "interactions":
		return s.Interactions
	}
	return 0
}

// LoadSchema creates the demo schema in the database pool is connected to
// and fills it: tenants, organizations, contacts and interactions in
// public, with primary keys only (no secondary indexes, and no foreign-key
// constraints: with pg_stat_statements.track = all their validation
// queries would show up as workload), generated deterministically with
// generate_series, then VACUUM ANALYZE. It creates
// the pg_stat_statements and hypopg extensions first (see CheckServer).
// Demo tables from an earlier run are replaced; a table of the same name
// that the demo did not create is an error, never dropped.
func LoadSchema(ctx context.Context, pool *pgxpool.Pool, scale Scale, progress io.Writer) error {
	progress = orDiscard(progress)
	if err := scale.Validate(); err != nil {
		return err
	}
	begin := time.Now()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %s", postgres.Describe(err))
	}
	defer conn.Release()

	if err := CheckServer(ctx, conn, progress); err != nil {
		return err
	}
	if err := dropDemoTables(ctx, conn); err != nil {
		return err
	}
	if err := execEach(ctx, conn, ddl); err != nil {
		return fmt.Errorf("create demo tables: %w", err)
	}
	inserts := loadSQL(scale)
	for _, table := range Tables() {
		t := time.Now()
		tag, err := conn.Exec(ctx, marker+inserts[table])
		if err != nil {
			return fmt.Errorf("load %s: %s", table, postgres.Describe(err))
		}
		fmt.Fprintf(progress, "load: %-13s %7d rows in %s\n", table, tag.RowsAffected(), since(t))
	}
	t := time.Now()
	for _, table := range Tables() {
		if _, err := conn.Exec(ctx, marker+"vacuum (analyze) "+postgres.Ident("public", table)); err != nil {
			return fmt.Errorf("analyze %s: %s", table, postgres.Describe(err))
		}
	}
	fmt.Fprintf(progress, "load: vacuum analyze in %s; schema loaded in %s\n", since(t), since(begin))
	return nil
}

// OwnTables hands the demo tables to owner, a role created (NOLOGIN,
// not a superuser) unless it exists, with CREATE on schema public: the
// application's role, which IndexPilot's role joins to build indexes
// (CREATE INDEX needs ownership of the table and CREATE on its schema).
// An existing superuser is refused.
func OwnTables(ctx context.Context, q postgres.Querier, owner string) error {
	var super *bool
	if err := q.QueryRow(ctx, marker+"select (select rolsuper from pg_roles where rolname = $1)", owner).Scan(&super); err != nil {
		return fmt.Errorf("look up role %s: %s", owner, postgres.Describe(err))
	}
	switch {
	case super == nil:
		if _, err := q.Exec(ctx, marker+"create role "+postgres.Ident(owner)+" nologin"); err != nil {
			return fmt.Errorf("create role %s: %s", owner, postgres.Describe(err))
		}
	case *super:
		return fmt.Errorf("role %s is a superuser: the demo tables need an ordinary owner", owner)
	}
	if _, err := q.Exec(ctx, marker+"grant create on schema public to "+postgres.Ident(owner)); err != nil {
		return fmt.Errorf("grant create on schema public to %s: %s", owner, postgres.Describe(err))
	}
	for _, table := range Tables() {
		if _, err := q.Exec(ctx, marker+"alter table "+postgres.Ident("public", table)+" owner to "+postgres.Ident(owner)); err != nil {
			return fmt.Errorf("hand %s to %s: %s", table, owner, postgres.Describe(err))
		}
	}
	return nil
}

// execEach runs the ;-separated statements of script one by one, each
// with the marker (in a multi-statement string only the first would carry
// it in pg_stat_statements).
func execEach(ctx context.Context, conn *pgxpool.Conn, script string) error {
	for _, stmt := range strings.Split(script, ";\n") {
		if stmt = strings.TrimSpace(stmt); stmt == "" {
			continue
		}
		if _, err := conn.Exec(ctx, marker+stmt); err != nil {
			return errors.New(postgres.Describe(err))
		}
	}
	return nil
}

// CheckServer prepares and checks the connected database for the demo:
// it creates pg_stat_statements and checks that the server preloads it
// (without it the pipeline sees no workload), and creates hypopg when the
// server has it (without it the scorer falls back to its statistics model;
// a warning says so). It changes no server setting.
func CheckServer(ctx context.Context, q postgres.Querier, progress io.Writer) error {
	progress = orDiscard(progress)
	version, err := postgres.ServerVersion(ctx, q)
	if err != nil {
		return fmt.Errorf("check server: %s", postgres.Describe(err))
	}
	major := version / 10000
	if _, err := q.Exec(ctx, marker+"create extension if not exists pg_stat_statements"); err != nil {
		return fmt.Errorf("create extension pg_stat_statements: %s", postgres.Describe(err))
	}
	var n int64
	if err := q.QueryRow(ctx, marker+"select count(*) from pg_stat_statements").Scan(&n); err != nil {
		if postgres.SQLState(err) == "55000" {
			return errors.New("pg_stat_statements is not in this server's shared_preload_libraries: add it and restart the server (infra/scripts/setup-postgres.sh does it, as root), or use the demo's own throwaway cluster")
		}
		return fmt.Errorf("read pg_stat_statements: %s", postgres.Describe(err))
	}
	var hypo bool
	if err := q.QueryRow(ctx, marker+"select exists(select 1 from pg_available_extensions where name = 'hypopg')").Scan(&hypo); err != nil {
		return fmt.Errorf("check hypopg: %s", postgres.Describe(err))
	}
	if !hypo {
		fmt.Fprintf(progress, "load: warning: hypopg is not available on this server (package postgresql-%d-hypopg, infra/scripts/setup-postgres.sh); what-if costs fall back to statistics\n", major)
		return nil
	}
	if _, err := q.Exec(ctx, marker+"create extension if not exists hypopg"); err != nil {
		return fmt.Errorf("create extension hypopg: %s", postgres.Describe(err))
	}
	return nil
}

// dropDemoTables drops the demo tables of an earlier run, refusing to touch
// a same-named table that does not carry the demo's comment.
func dropDemoTables(ctx context.Context, conn *pgxpool.Conn) error {
	var found []string
	for _, table := range Tables() {
		var exists bool
		var comment *string
		err := conn.QueryRow(ctx, marker+`select c.oid is not null, obj_description(c.oid, 'pg_class')
from (select to_regclass($1) as oid) r left join pg_class c on c.oid = r.oid`, postgres.Ident("public", table)).Scan(&exists, &comment)
		if err != nil {
			return fmt.Errorf("inspect table %s: %s", table, postgres.Describe(err))
		}
		if !exists {
			continue
		}
		if comment == nil || *comment != demoComment {
			return fmt.Errorf("table public.%s exists and was not created by the demo: use an empty database", table)
		}
		found = append(found, postgres.Ident("public", table))
	}
	if len(found) == 0 {
		return nil
	}
	if _, err := conn.Exec(ctx, marker+"drop table if exists "+strings.Join(found, ", ")+" cascade"); err != nil {
		return fmt.Errorf("drop earlier demo tables: %s", postgres.Describe(err))
	}
	return nil
}

// CreateDatabase creates database name through the server adminURL points
// at, unless it exists, and returns a URL for it (adminURL with the
// database replaced). Errors never include the URL.
func CreateDatabase(ctx context.Context, adminURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", fmt.Errorf("connect to create database %s: %s", name, postgres.Describe(err))
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var exists bool
	if err := conn.QueryRow(ctx, marker+"select exists(select 1 from pg_database where datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up database %s: %s", name, postgres.Describe(err))
	}
	if !exists {
		if _, err := conn.Exec(ctx, marker+"create database "+postgres.Ident(name)); err != nil {
			return "", fmt.Errorf("create database %s: %s", name, postgres.Describe(err))
		}
	}
	return withDatabase(adminURL, name)
}

// withDatabase swaps the database of a URL or keyword/value DSN.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", errors.New("parse connection URL: invalid format (details withheld, it may hold a password)")
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	return dsn + " dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(name) + "'", nil
}
