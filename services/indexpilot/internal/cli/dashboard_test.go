package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/logtest"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

// serveAndGet runs the command args until it logs the dashboard's URL,
// reads GET path there, stops it and checks it exited cleanly.
func serveAndGet(t *testing.T, path string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, logs logtest.Buffer
	done := make(chan int, 1)
	go func() { done <- Main(ctx, args, &out, &logs) }()
	urlRe := regexp.MustCompile(`"url":"(http://127\.0\.0\.1:\d+/)"`)
	var base string
	require.Eventually(t, func() bool {
		if m := urlRe.FindStringSubmatch(logs.String()); m != nil {
			base = m[1]
			return true
		}
		select {
		case code := <-done:
			t.Fatalf("%v exited with %d: %s", args, code, logs.String())
		default:
		}
		return false
	}, time.Minute, 50*time.Millisecond, "no dashboard URL logged: %s", logs.String())
	resp, err := http.Get(base + path[1:])
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	cancel()
	require.Equal(t, 0, <-done, logs.String())
	return resp.StatusCode, string(b)
}

func TestRunAndDashboardServeTheDashboard(t *testing.T) {
	db := pgtest.NewDatabase(t)
	env := map[string]string{"INDEXPILOT_DATABASE_URL": db.URL, "INDEXPILOT_DASHBOARD_TOKEN": "", "INDEXPILOT_DASHBOARD_LISTEN": ""}
	code, _, stderr := runCLI(t, env, "dashboard")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "run indexpilot init first")
	code, _, stderr = runCLI(t, env, "init")
	require.Equal(t, 0, code, stderr)

	// Stand-alone, no token: read-only.
	status, body := serveAndGet(t, "/api/v1/session", "dashboard", "--listen", "127.0.0.1:0")
	require.Equal(t, http.StatusOK, status)
	require.JSONEq(t, `{"read_only":true,"authenticated":false}`, body)

	// In the all-in-one process when dashboard.listen is set, with a token.
	t.Setenv("INDEXPILOT_DASHBOARD_LISTEN", "127.0.0.1:0")
	t.Setenv("INDEXPILOT_DASHBOARD_TOKEN", "run-token-run-token-run-token")
	t.Setenv("INDEXPILOT_TARGETS", "main="+db.URL)
	status, body = serveAndGet(t, "/api/v1/targets", "run")
	require.Equal(t, http.StatusOK, status, body)
	var targets []struct {
		Target string `json:"target"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &targets))
	require.Len(t, targets, 1)
	require.Equal(t, "main", targets[0].Target)
}
