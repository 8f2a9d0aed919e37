package bypass_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestAllowsAnyDisablingLevelWins(t *testing.T) {
	exp := t0.Add(time.Minute)
	cases := []struct {
		name    string
		cfg     config.Bypass
		runtime []bypass.Switch
		level   bypass.Level
		what    string
		ddl     bool
		at      time.Time
		allowed bool
		reason  events.Reason
	}{
		{name: "nothing set", level: bypass.LevelFeature, what: "auto_indexing", allowed: true},
		{name: "config feature", cfg: config.Bypass{Features: []string{"auto_indexing"}}, level: bypass.LevelFeature, what: "auto_indexing", reason: events.ReasonBypassFeature},
		{name: "other feature unaffected", cfg: config.Bypass{Features: []string{"index_removal"}}, level: bypass.LevelFeature, what: "auto_indexing", allowed: true},
		{name: "system wins over feature", cfg: config.Bypass{System: true}, level: bypass.LevelFeature, what: "auto_indexing", reason: events.ReasonBypassSystem},
		{name: "stage paused", cfg: config.Bypass{Stages: []string{"gatekeeper"}}, level: bypass.LevelStage, what: "gatekeeper", reason: events.ReasonBypassStage},
		{name: "runtime enable cannot undo config disable", cfg: config.Bypass{Features: []string{"auto_indexing"}},
			runtime: []bypass.Switch{{Level: bypass.LevelFeature, Name: "auto_indexing", Disabled: false, ChangeID: 3}},
			level:   bypass.LevelFeature, what: "auto_indexing", reason: events.ReasonBypassFeature},
		{name: "newer runtime change wins over older", runtime: []bypass.Switch{
			{Level: bypass.LevelStage, Name: "executor", Disabled: false, ChangeID: 5},
			{Level: bypass.LevelStage, Name: "executor", Disabled: true, ChangeID: 4}},
			level: bypass.LevelStage, what: "executor", allowed: true},
		{name: "enabling a stage leaves the system off", runtime: []bypass.Switch{
			{Level: bypass.LevelSystem, Disabled: true, ChangeID: 1},
			{Level: bypass.LevelStage, Name: "executor", Disabled: false, ChangeID: 2}},
			level: bypass.LevelStage, what: "executor", reason: events.ReasonBypassSystem},
		{name: "emergency stop blocks ddl", runtime: []bypass.Switch{{Level: bypass.LevelEmergency, Disabled: true, ChangeID: 1}},
			ddl: true, what: "auto_indexing", reason: events.ReasonEmergencyStop},
		{name: "emergency stop expired", runtime: []bypass.Switch{{Level: bypass.LevelEmergency, Disabled: true, ChangeID: 1, ExpiresAt: &exp}},
			ddl: true, what: "auto_indexing", at: t0.Add(2 * time.Minute), allowed: true},
		{name: "emergency stop not yet expired", runtime: []bypass.Switch{{Level: bypass.LevelEmergency, Disabled: true, ChangeID: 1, ExpiresAt: &exp}},
			ddl: true, what: "auto_indexing", at: t0.Add(30 * time.Second), reason: events.ReasonEmergencyStop},
		{name: "paused executor blocks ddl", cfg: config.Bypass{Stages: []string{"executor"}}, ddl: true, what: "index_removal", reason: events.ReasonBypassStage},
		{name: "disabled feature blocks its ddl", cfg: config.Bypass{Features: []string{"index_removal"}}, ddl: true, what: "index_removal", reason: events.ReasonBypassFeature},
		{name: "startup", cfg: config.Bypass{Startup: true}, level: bypass.LevelStartup, reason: events.ReasonBypassFeature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			at := c.at
			if at.IsZero() {
				at = t0
			}
			st := bypass.NewState(c.cfg, func() time.Time { return at })
			st.Apply(c.runtime...)
			var ok bool
			var why bypass.Denial
			if c.ddl {
				ok, why = st.AllowsDDL(c.what)
			} else {
				ok, why = st.Allows(c.level, c.what)
			}
			require.Equal(t, c.allowed, ok, "denial: %+v", why)
			if !c.allowed {
				require.Equal(t, c.reason, why.Reason)
				require.NotEmpty(t, why.Detail())
			}
		})
	}
}

func TestChangeValidation(t *testing.T) {
	for _, c := range []bypass.Change{
		{Level: bypass.LevelFeature, Name: "autoindexing", Disabled: true, Reason: "x"},
		{Level: bypass.LevelStage, Name: "planner", Disabled: true, Reason: "x"},
		{Level: bypass.LevelSystem, Name: "x", Disabled: true, Reason: "x"},
		{Level: bypass.LevelSystem, Disabled: true},
		{Level: bypass.LevelEmergency, Disabled: false, Reason: "x", For: time.Minute},
		{Level: "galaxy", Reason: "x"},
	} {
		require.Error(t, c.Validate(), "%+v", c)
	}
	require.NoError(t, bypass.Change{Level: bypass.LevelEmergency, Disabled: true, Reason: "x", For: time.Minute}.Validate())
}

func watch(t *testing.T, ctx context.Context, db *pgtest.Database, b *bus.Bus, now func() time.Time) *bypass.State {
	t.Helper()
	return watchEvery(t, ctx, db, b, now, 50*time.Millisecond)
}

// watchEvery is watch with the periodic re-read every refresh.
func watchEvery(t testing.TB, ctx context.Context, db *pgtest.Database, b *bus.Bus, now func() time.Time, refresh time.Duration) *bypass.State {
	t.Helper()
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Features.Bypass.RefreshInterval = refresh
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := bypass.Watch(ctx, stage.Deps{Config: cfg, Bus: b, Control: db.Pool, Targets: stage.NewTargets(nil, "t"),
		Logger: logger, Now: now}, "executor")
	require.NoError(t, err)
	return st
}

func TestSetPersistsLogsAndReachesAnotherInstance(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	b := bus.NewMemory(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer b.Close()
	other := watch(t, ctx, db, b, nil)
	ok, _ := other.AllowsDDL(config.FeatureAutoIndexing)
	require.True(t, ok)

	guarded, done := other.GuardDDL(ctx)
	defer done()
	sw, err := bypass.Set(ctx, db.Pool, b, bypass.Change{Level: bypass.LevelEmergency, Disabled: true,
		Reason: "incident 42", Actor: "alice", For: time.Hour}, time.Now())
	require.NoError(t, err)
	require.Positive(t, sw.ChangeID)
	require.Eventually(t, func() bool { ok, _ := other.AllowsDDL(config.FeatureAutoIndexing); return !ok },
		10*time.Second, 5*time.Millisecond, "the other instance did not obey the emergency stop (its latency is BenchmarkChangeReachesInstance's)")
	select {
	case <-guarded.Done():
		require.ErrorIs(t, context.Cause(guarded), bypass.ErrEmergencyStop)
	case <-time.After(2 * time.Second):
		t.Fatal("the guarded DDL context was not cancelled by the emergency stop")
	}
	stopped, stopWhy := other.Stopped()
	require.True(t, stopped)
	require.Contains(t, stopWhy, "incident 42")
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `select count(*) from indexpilot.mutation_log
 where stage = 'bypass' and action = 'bypass_set' and outcome = 'disabled' and reason = 'incident 42'`).Scan(&n))
	require.Equal(t, 1, n)

	// A new instance starting later reads the persisted state.
	late := watch(t, ctx, db, b, nil)
	ok, why := late.AllowsDDL(config.FeatureAutoIndexing)
	require.False(t, ok)
	require.Equal(t, events.ReasonEmergencyStop, why.Reason)
	require.Equal(t, "alice", why.Switch.Actor)
}

func TestEmergencyStopRecoversAutomatically(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	b := bus.NewMemory(slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer b.Close()
	var clock = t0
	var mu = make(chan struct{}, 1)
	mu <- struct{}{}
	now := func() time.Time { <-mu; defer func() { mu <- struct{}{} }(); return clock }
	st := watch(t, ctx, db, b, now)
	_, err = bypass.Set(ctx, db.Pool, nil, bypass.Change{Level: bypass.LevelEmergency, Disabled: true,
		Reason: "storm", Actor: "bob", For: 10 * time.Minute}, t0)
	require.NoError(t, err)
	require.Eventually(t, func() bool { ok, _ := st.AllowsDDL("auto_indexing"); return !ok }, 5*time.Second, 10*time.Millisecond)
	<-mu
	clock = t0.Add(11 * time.Minute)
	mu <- struct{}{}
	require.Eventually(t, func() bool {
		var n int
		_ = db.Pool.QueryRow(ctx, `select count(*) from indexpilot.mutation_log where action = 'bypass_recover' and outcome = 'enabled'`).Scan(&n)
		return n == 1
	}, 5*time.Second, 10*time.Millisecond, "the expired emergency stop was not ended in bypass_state/mutation_log")
	ok, _ := st.AllowsDDL("auto_indexing")
	require.True(t, ok)
	var disabled bool
	require.NoError(t, db.Pool.QueryRow(ctx, `select disabled from indexpilot.bypass_state where level = 'emergency'`).Scan(&disabled))
	require.False(t, disabled)
}
