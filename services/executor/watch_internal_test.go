package executor

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func TestParseProcStat(t *testing.T) {
	busy, total, err := parseProcStat("cpu  100 5 50 800 20 3 2 0 7 0")
	require.NoError(t, err)
	require.Equal(t, uint64(100+5+50+3+2+0), busy, "idle and iowait are not busy; guest is already in user")
	require.Equal(t, uint64(100+5+50+800+20+3+2+0), total)
	_, _, err = parseProcStat("intr 1 2 3")
	require.Error(t, err)
}

func TestPGCPUMeasuresOnTheDatabaseSide(t *testing.T) {
	t.Parallel()
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	c := &PGCPU{Cores: 2}
	_, err := c.CPUPercent(ctx, "main", db.Pool)
	if err != nil {
		// /proc/stat is readable (superuser): the first reading is a baseline.
		require.ErrorIs(t, err, ErrNoSample)
	}
	var pct float64
	require.Eventually(t, func() bool {
		pct, err = c.CPUPercent(ctx, "main", db.Pool)
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
	require.GreaterOrEqual(t, pct, 0.0)
	require.LessOrEqual(t, pct, 100.0)
}
