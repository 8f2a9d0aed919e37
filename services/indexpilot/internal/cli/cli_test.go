package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsageErrorsExitTwoWithOneLine(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"recommendations", "--state", "nonsense"}, {"run", "extra"}, {"demo", "--rows", "huge"}} {
		code, _, stderr := runCLI(t, nil, args...)
		require.Equal(t, 2, code, "args %v", args)
		require.True(t, strings.HasPrefix(stderr, "indexpilot: "), "stderr: %q", stderr)
		require.NotContains(t, strings.SplitN(stderr, "\n", 2)[0], "\t")
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	require.NoError(t, os.WriteFile(good, []byte("database_url: postgres://bob:s3cret@db/app\nfeatures:\n  auto_indexer:\n    mode: apply\n"), 0o600))
	code, out, stderr := runCLI(t, map[string]string{"INDEXPILOT_DATABASE_URL": ""}, "--config", good, "check-config")
	// An empty INDEXPILOT_DATABASE_URL overrides the file: that is an error.
	require.Equal(t, 1, code, "stdout %s stderr %s", out, stderr)
	require.Contains(t, stderr, "database_url: not set")

	os.Unsetenv("INDEXPILOT_DATABASE_URL")
	code, out, stderr = runCLI(t, nil, "--config", good, "check-config")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "mode: apply")
	require.Contains(t, out, "REDACTED")
	require.NotContains(t, out, "s3cret")

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("database_url: x\nexecutor:\n  lock_timout: 1s\n"), 0o600))
	code, _, stderr = runCLI(t, nil, "--config", bad, "check-config")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "executor.lock_timout: unknown key")
	require.Equal(t, 1, strings.Count(stderr, "\n"), "error is not one line: %q", stderr)
}

func TestInitAndRecommendations(t *testing.T) {
	db := pgtest.NewDatabase(t)
	env := map[string]string{"INDEXPILOT_DATABASE_URL": db.URL}
	code, out, stderr := runCLI(t, env, "init")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "applied 0001_foundation")
	code, out, _ = runCLI(t, env, "init")
	require.Equal(t, 0, code)
	require.Contains(t, out, "0 migrations applied now")
	ms, _ := metadata.Migrations()
	require.Contains(t, out, "version "+strconv.Itoa(ms[len(ms)-1].Version))

	code, out, _ = runCLI(t, env, "recommendations")
	require.Equal(t, 0, code)
	require.Equal(t, "no recommendations\n", out)
	code, out, _ = runCLI(t, env, "recommendations", "--json")
	require.Equal(t, 0, code)
	require.Equal(t, "[]\n", out)

	db.Exec(t, `insert into indexpilot.recommendations (id, target, index_key, schema_name, table_name, index_spec, index_name,
		state, reason, candidate_id, candidate_event_id, formula_version, max_improvement_pct, estimated_size_bytes, evidence)
		values ('9f36b406-9336-5349-b39c-fdef26eb2fd7', 'main', 'public.t|btree|a|', 'public', 't',
		'{"schema":"public","table":"t","method":"btree","columns":["a"]}', 'ip_t_a_12345678', 'proposed', 'advisory_mode',
		'487650a2-4ea2-56e3-a2ab-512d3a7cc7c6', '5c05671c-c558-5f2f-9624-a656d19f511d', 'v1', 97.5, 8192,
		'{"target":"main","candidate_id":"487650a2-4ea2-56e3-a2ab-512d3a7cc7c6","index":{"schema":"public","table":"t","method":"btree","columns":["a"]},"formula_version":"v1","what_if_method":"hypopg","window_end":"2026-11-25T12:00:00Z","max_improvement_pct":97.5,"estimated_size_bytes":8192,"statements":[{"query_id":"1","query":"select * from t where a = $1","calls":10,"mean_exec_time_ms":2,"cost_before":100,"cost_after":2.5,"improvement_pct":97.5,"pricing_method":"custom:qualstats","value_sets":3}],
		"forecast":{"query_id":"1","period":"weekly","phase":"Mon 02:00 UTC","amplitude":168,"confidence":1,"periods":5,
		"peak_at":"2026-11-30T02:00:00Z","peak_end":"2026-11-30T03:00:00Z","build_seconds":600,
		"build_by":"2026-11-30T01:20:00Z","build_from":"2026-11-29T19:20:00Z"}}')`)
	code, out, _ = runCLI(t, env, "recommendations", "--evidence")
	require.Equal(t, 0, code)
	require.Contains(t, out, "9f36b406  main    proposed  public.t  a        97.5%")
	require.Contains(t, out, `CREATE INDEX CONCURRENTLY "ip_t_a_12345678" ON "public"."t" USING btree ("a")`)
	require.Contains(t, out, "plan cost     100.00 ->      2.50")
	require.Contains(t, out, "priced custom:qualstats×3")
	require.Contains(t, out, "forecast: weekly peak expected Mon 02:00 UTC, build by 01:20 (confidence 1.00 over 5 weeks); "+
		"build estimated 10m0s, approved from Sun 19:20 UTC")
	code, out, _ = runCLI(t, env, "recommendations", "--json")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"build_by": "2026-11-30T01:20:00Z"`)
	code, out, _ = runCLI(t, env, "recommendations", "--json", "--state", "applied")
	require.Equal(t, 0, code)
	require.Equal(t, "[]\n", out)
	code, out, _ = runCLI(t, env, "status")
	require.Equal(t, 0, code)
	require.Contains(t, out, "proposed=1")
}
