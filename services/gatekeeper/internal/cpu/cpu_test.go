package cpu_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/gatekeeper/internal/cpu"
)

func TestProcStatPercent(t *testing.T) {
	a, err := cpu.ParseProcStat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4 5\n")
	require.NoError(t, err)
	b, err := cpu.ParseProcStat("cpu  250 0 150 750 150 0 0 0 0 0\n")
	require.NoError(t, err)
	pct, err := cpu.Percent(a, b)
	require.NoError(t, err)
	// busy +200 of total +300
	require.InDelta(t, 66.67, pct, 0.01)
	_, err = cpu.Percent(b, b)
	require.Error(t, err)
	_, err = cpu.ParseProcStat("intr 1 2 3")
	require.Error(t, err)
}

func TestParsePrometheus(t *testing.T) {
	v, err := cpu.ParsePrometheus(strings.NewReader(`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.1,"81.5"]}]}}`))
	require.NoError(t, err)
	require.Equal(t, 81.5, v)
	_, err = cpu.ParsePrometheus(strings.NewReader(`{"status":"success","data":{"result":[]}}`))
	require.Error(t, err)
}

func TestLocalProcStat(t *testing.T) {
	pct, err := cpu.Local{Every: 50e6}.Percent(t.Context())
	if err != nil {
		t.Skipf("no /proc/stat here: %v", err)
	}
	require.GreaterOrEqual(t, pct, 0.0)
	require.LessOrEqual(t, pct, 100.0)
}

func TestPgSourceMeasuresOnTheDatabaseSide(t *testing.T) {
	db := pgtest.NewDatabase(t)
	pct, method, err := cpu.Pg{Cores: 2, Every: 100 * time.Millisecond}.Percent(t.Context(), db.Pool)
	require.NoError(t, err)
	require.Contains(t, []string{"proc_stat", "active_backends"}, method)
	require.GreaterOrEqual(t, pct, 0.0)
	require.LessOrEqual(t, pct, 100.0)
	t.Logf("database host CPU %.1f%% via %s", pct, method)
}
