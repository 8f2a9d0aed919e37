package metadata_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
)

func TestStageHealthBeats(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx := context.Background()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	h := metadata.NewStageHealth(db.Pool, slog.New(slog.NewTextHandler(io.Discard, nil)), "scorer")
	type row struct {
		lastRun           time.Time
		lastSuccess       *time.Time
		lastError         string
		lastErrorAt       *time.Time
		failures          int
		intervalMs        int64
		position          *time.Time
		stage, target, in string
	}
	read := func() row {
		var r row
		require.NoError(t, db.Pool.QueryRow(ctx, `select stage, target, instance, last_run_at, last_success_at, last_error,
       last_error_at, consecutive_failures, interval_ms, position from indexpilot.stage_health`).
			Scan(&r.stage, &r.target, &r.in, &r.lastRun, &r.lastSuccess, &r.lastError, &r.lastErrorAt, &r.failures, &r.intervalMs, &r.position))
		return r
	}
	t0 := time.Now().Truncate(time.Millisecond)
	w := t0.Add(-time.Minute)
	h.Beat(ctx, "main", t0, 2*time.Second, &w, nil)
	r := read()
	require.Equal(t, "scorer", r.stage)
	require.Equal(t, "main", r.target)
	require.NotEmpty(t, r.in)
	require.True(t, r.lastRun.Equal(t0))
	require.True(t, r.lastSuccess.Equal(t0))
	require.True(t, r.position.Equal(w))
	require.EqualValues(t, 2000, r.intervalMs)
	require.Nil(t, r.lastErrorAt)

	// A success soon after a success is not written; a failure always is,
	// and counts; the position is kept.
	h.Beat(ctx, "main", t0.Add(time.Second), 2*time.Second, nil, nil)
	require.True(t, read().lastRun.Equal(t0), "a success within BeatEvery is not written")
	h.Beat(ctx, "main", t0.Add(2*time.Second), 2*time.Second, nil, errors.New("boom"))
	h.Beat(ctx, "main", t0.Add(3*time.Second), 2*time.Second, nil, errors.New("boom again"))
	r = read()
	require.Equal(t, 2, r.failures)
	require.Equal(t, "boom again", r.lastError)
	require.True(t, r.lastErrorAt.Equal(t0.Add(3*time.Second)))
	require.True(t, r.lastSuccess.Equal(t0), "the last success stays")
	require.True(t, r.position.Equal(w))

	// The recovery is written at once; the last error stays, with its time.
	h.Beat(ctx, "main", t0.Add(4*time.Second), 2*time.Second, nil, nil)
	r = read()
	require.Zero(t, r.failures)
	require.True(t, r.lastSuccess.Equal(t0.Add(4*time.Second)))
	require.Equal(t, "boom again", r.lastError)
	// A nil writer does nothing.
	var none *metadata.StageHealth
	none.Beat(ctx, "main", t0, time.Second, nil, nil)
}
