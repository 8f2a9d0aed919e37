package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/logtest"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/demo"
)

// TestDemoRunsAsTheLeastPrivilegeRole runs `indexpilot demo` as `make
// demo` does (default scale; the small one's load outweighs its reads, so
// it builds nothing) on its own throwaway cluster and watches the server meanwhile:
// every session of IndexPilot (its application names) belongs to the role
// indexpilot, which is not a superuser; the CREATE INDEX CONCURRENTLY
// statements in pg_stat_statements were run by it; it owns the control
// schema; and the indexes it built are valid (owned, like their tables,
// by the application's role).
func TestDemoRunsAsTheLeastPrivilegeRole(t *testing.T) {
	if _, _, err := demo.FindBinaries(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("a throwaway PostgreSQL cluster is required under CI=true: %v", err)
		}
		t.Skip(err)
	}
	t.Setenv("INDEXPILOT_DATABASE_URL", "")
	// Builds must not wait for a quiet CPU on a busy test machine.
	t.Setenv("INDEXPILOT_GATEKEEPER_CPU_SOURCE", "none")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		require.NoError(t, os.Chmod(filepath.Dir(dir), 0o711))
	}

	// The observer: IndexPilot's sessions in pg_stat_activity every 100 ms.
	var mu sync.Mutex
	seen := map[string]int{} // usename of IndexPilot's sessions -> samples
	var cluster *demo.Cluster
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampled sync.WaitGroup
	o := demoOptions{keep: true, rows: "default", per: 200, dir: filepath.Join(dir, "cluster"),
		started: func(c *demo.Cluster) {
			cluster = c
			t.Cleanup(func() { _ = c.Stop(context.Background()) })
			sampled.Add(1)
			go func() {
				defer sampled.Done()
				conn, err := pgx.Connect(sampleCtx, c.URL("postgres"))
				if err != nil {
					t.Errorf("sampler: %v", err)
					return
				}
				defer conn.Close(context.Background())
				for sampleCtx.Err() == nil {
					rows, err := conn.Query(sampleCtx, `select usename from pg_stat_activity
					  where application_name like 'indexpilot-%' and application_name <> 'indexpilot-setup'
					     or application_name = 'indexpilot bypass listener'`)
					if err == nil {
						names, err := pgx.CollectRows(rows, pgx.RowTo[string])
						if err == nil {
							mu.Lock()
							for _, n := range names {
								seen[n]++
							}
							mu.Unlock()
						}
					}
					time.Sleep(100 * time.Millisecond)
				}
			}()
		}}
	var out, errb logtest.Buffer
	err := demoCmd(ctx, "", o, &out, &errb)
	stopSampling()
	sampled.Wait()
	require.NotNil(t, cluster)
	if err != nil {
		// What the pipeline recorded: why builds failed, say.
		var why string
		if c, cerr := pgx.Connect(ctx, cluster.URL(demoDatabase)); cerr == nil {
			_ = c.QueryRow(ctx, `select coalesce(string_agg(concat_ws(' | ', index_name, state, reason, detail), E'\n'), '')
			  from indexpilot.recommendations`).Scan(&why)
			_ = c.Close(context.Background())
		}
		t.Fatalf("demo: %v\nrecommendations:\n%s\ndemo output:\n%s\nstderr:\n%s", err, why, &out, &errb)
	}
	t.Logf("demo output:\n%s", &out)
	require.Contains(t, out.String(), "IndexPilot connects as role indexpilot")

	mu.Lock()
	require.NotEmpty(t, seen, "no session of IndexPilot was ever seen in pg_stat_activity")
	for name, n := range seen {
		require.Equal(t, demoRole, name, "IndexPilot had %d session samples as %s", n, name)
	}
	mu.Unlock()

	conn, err := pgx.Connect(ctx, cluster.URL(demoDatabase))
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var super, member bool
	var schemaOwner string
	require.NoError(t, conn.QueryRow(ctx, `select r.rolsuper, pg_has_role(r.oid, $2::name, 'USAGE'),
	  (select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'indexpilot')
	  from pg_roles r where r.rolname = $1`, demoRole, demoOwner).Scan(&super, &member, &schemaOwner))
	require.False(t, super, "the demo's role is a superuser")
	require.True(t, member, "the demo's role is not a member of the tables' owner")
	require.Equal(t, demoRole, schemaOwner, "the control schema's owner")

	// Who ran the builds: pg_stat_statements records the role of each.
	var builds, byOthers int
	require.NoError(t, conn.QueryRow(ctx, `select count(*) filter (where userid = $1::regrole),
	       count(*) filter (where userid <> $1::regrole)
	  from pg_stat_statements
	 where query ilike '/* indexpilot:executor */%create index concurrently%'`, demoRole).Scan(&builds, &byOthers))
	if builds == 0 {
		rows, err := conn.Query(ctx, "select userid::regrole::text || ': ' || query from pg_stat_statements where query ilike '%index%'")
		require.NoError(t, err)
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		t.Fatalf("no CREATE INDEX CONCURRENTLY by role %s in pg_stat_statements; statements naming an index:\n%s", demoRole, strings.Join(texts, "\n"))
	}
	require.Zero(t, byOthers, "CREATE INDEX CONCURRENTLY run by another role")

	// The indexes it recorded as applied exist, are valid and belong to
	// the tables' owner.
	rows, err := conn.Query(ctx, `select r.index_name, coalesce(x.indisvalid, false), coalesce(pg_get_userbyid(i.relowner), '')
	  from indexpilot.recommendations r
	  left join pg_class i on i.relname = r.index_name and i.relnamespace = 'public'::regnamespace
	  left join pg_index x on x.indexrelid = i.oid
	 where r.state = 'applied'`)
	require.NoError(t, err)
	type built struct {
		name, owner string
		valid       bool
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (built, error) {
		var b built
		return b, r.Scan(&b.name, &b.valid, &b.owner)
	})
	require.NoError(t, err)
	require.NotEmpty(t, list, "the demo applied nothing; output:\n%s", &out)
	for _, b := range list {
		require.True(t, b.valid, "index %s is not valid", b.name)
		require.Equal(t, demoOwner, b.owner, "owner of index %s", b.name)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
}
