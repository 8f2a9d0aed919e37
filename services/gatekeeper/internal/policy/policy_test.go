package policy_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/gatekeeper/internal/policy"
)

func check(t *testing.T, v policy.Verdict, pass bool, reason events.Reason) {
	t.Helper()
	require.Equal(t, pass, v.Pass, "verdict %+v", v)
	if !pass {
		require.Equal(t, reason, v.Reason)
		require.NotEmpty(t, v.Detail)
	}
}

func TestMinBenefit(t *testing.T) {
	for _, c := range []struct {
		got, min float64
		pass     bool
	}{{25, 20, true}, {20, 20, true}, {19.9, 20, false}, {0, 20, false}} {
		check(t, policy.MinBenefit(c.got, c.min), c.pass, events.ReasonBelowMinBenefit)
	}
}

func TestBlocklist(t *testing.T) {
	for _, c := range []struct {
		name            string
		queries, blocks []string
		pass            bool
	}{
		{"empty", []string{"1"}, nil, true},
		{"other statement", []string{"1"}, []string{"2"}, true},
		{"pair reverted", []string{"1", "2"}, []string{"2"}, false},
		{"wildcard", []string{"1"}, []string{"*"}, false},
	} {
		t.Run(c.name, func(t *testing.T) { check(t, policy.Blocklist(c.queries, c.blocks), c.pass, events.ReasonBlocklisted) })
	}
}

func TestStorage(t *testing.T) {
	mb := int64(1 << 20)
	for _, c := range []struct {
		name  string
		est   int64
		facts policy.StorageFacts
		cfg   config.Storage
		pass  bool
	}{
		{"no limits", 100 * mb, policy.StorageFacts{}, config.Storage{}, true},
		{"under absolute", 4 * mb, policy.StorageFacts{IndexPilotBytes: 5 * mb}, config.Storage{MaxMB: 10}, true},
		{"over absolute with real sizes", 6 * mb, policy.StorageFacts{IndexPilotBytes: 5 * mb}, config.Storage{MaxMB: 10}, false},
		{"over share of database", 2 * mb, policy.StorageFacts{DatabaseBytes: 100 * mb, IndexPilotBytes: 9 * mb}, config.Storage{MaxPctOfDatabase: 10}, false},
		{"under share of database", 1 * mb, policy.StorageFacts{DatabaseBytes: 100 * mb, IndexPilotBytes: 8 * mb}, config.Storage{MaxPctOfDatabase: 10}, true},
		{"unknown database size skips share", 50 * mb, policy.StorageFacts{}, config.Storage{MaxPctOfDatabase: 10}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			check(t, policy.Storage(c.est, c.facts, c.cfg), c.pass, events.ReasonStorageBudget)
		})
	}
}

func TestWrite(t *testing.T) {
	written := policy.TableFacts{Known: true, Indexes: 2, LiveRows: 1000, AvgRowWidthBytes: 100, Writes: 10}
	for _, c := range []struct {
		name   string
		est    int64
		facts  policy.TableFacts
		cfg    config.WriteLimits
		pass   bool
		reason events.Reason
	}{
		{"room left", 16000, written, config.WriteLimits{MaxIndexesPerTable: 3}, true, ""},
		{"too many indexes", 16000, written, config.WriteLimits{MaxIndexesPerTable: 2}, false, events.ReasonMaxIndexesPerTable},
		{"pending builds count", 16000, policy.TableFacts{Known: true, Indexes: 1, PendingIndexes: 1}, config.WriteLimits{MaxIndexesPerTable: 2}, false, events.ReasonMaxIndexesPerTable},
		// 16 bytes per entry over 100-byte rows: 16 % overhead.
		{"overhead under", 16000, written, config.WriteLimits{MaxOverheadPct: 20}, true, ""},
		{"overhead over with existing", 16000, func() policy.TableFacts { f := written; f.OverheadPct = 10; return f }(), config.WriteLimits{MaxOverheadPct: 20}, false, events.ReasonWriteOverhead},
		{"unwritten table costs nothing", 16000, func() policy.TableFacts { f := written; f.Writes = 0; return f }(), config.WriteLimits{MaxOverheadPct: 1}, true, ""},
	} {
		t.Run(c.name, func(t *testing.T) { check(t, policy.Write(c.est, c.facts, c.cfg), c.pass, c.reason) })
	}
}

func TestApproval(t *testing.T) {
	cfg := config.Approval{AutoApproveMinImprovementPct: 50, AutoApproveMaxSizeMB: 1}
	check(t, policy.Approval(60, 1000, false, cfg), true, "")
	check(t, policy.Approval(40, 1000, false, cfg), false, events.ReasonAwaitingApproval)
	check(t, policy.Approval(60, 2<<20, false, cfg), false, events.ReasonAwaitingApproval)
	check(t, policy.Approval(40, 2<<20, true, cfg), true, "")
	check(t, policy.Approval(1, 1<<40, false, config.Approval{}), true, "")
}

func TestWindow(t *testing.T) {
	// 2026-11-25 is a Wednesday.
	at := func(day, h, m int) time.Time { return time.Date(2026, 11, day, h, m, 0, 0, time.UTC) }
	for _, c := range []struct {
		name  string
		w     config.Window
		now   time.Time
		pass  bool
		retry time.Time
	}{
		{"always open", config.Window{TimeZone: "UTC"}, at(25, 12, 0), true, time.Time{}},
		{"inside day window", config.Window{Start: "09:00", End: "17:00", TimeZone: "UTC"}, at(25, 12, 0), true, time.Time{}},
		{"end is exclusive", config.Window{Start: "09:00", End: "17:00", TimeZone: "UTC"}, at(25, 17, 0), false, at(26, 9, 0)},
		{"before it opens", config.Window{Start: "09:00", End: "17:00", TimeZone: "UTC"}, at(25, 8, 59), false, at(25, 9, 0)},
		{"crossing midnight, evening", config.Window{Start: "22:00", End: "04:00", TimeZone: "UTC"}, at(25, 23, 30), true, time.Time{}},
		{"crossing midnight, morning", config.Window{Start: "22:00", End: "04:00", TimeZone: "UTC"}, at(26, 3, 59), true, time.Time{}},
		{"crossing midnight, midday waits", config.Window{Start: "22:00", End: "04:00", TimeZone: "UTC"}, at(25, 12, 0), false, at(25, 22, 0)},
		{"days are start days: Tuesday night covers Wednesday 02:00", config.Window{Start: "22:00", End: "04:00", Days: []string{"tue"}, TimeZone: "UTC"}, at(25, 2, 0), true, time.Time{}},
		{"days: Wednesday night not allowed", config.Window{Start: "22:00", End: "04:00", Days: []string{"tue"}, TimeZone: "UTC"}, at(25, 23, 0), false, at(31+1, 22, 0).AddDate(0, 0, -1)},
		{"time zone", config.Window{Start: "01:00", End: "05:00", TimeZone: "Europe/Berlin"}, at(25, 1, 30), true, time.Time{}},
		{"time zone outside", config.Window{Start: "01:00", End: "05:00", TimeZone: "Europe/Berlin"}, at(25, 4, 30), false, time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := policy.Window(c.w, c.now)
			check(t, v, c.pass, events.ReasonOutsideWindow)
			if !c.pass {
				require.True(t, c.retry.Equal(v.RetryAt), "opens at %s, want %s", v.RetryAt, c.retry)
			}
		})
	}
}

func TestForecastHold(t *testing.T) {
	// The peak is Monday 2026-11-30 02:00 UTC; build by 01:20, from 19:20
	// the evening before.
	at := func(day, h, m int) time.Time { return time.Date(2026, 11, day, h, m, 0, 0, time.UTC) }
	by, from := at(30, 1, 20), at(29, 19, 20)
	for _, c := range []struct {
		name  string
		w     config.Window
		now   time.Time
		pass  bool
		retry time.Time
	}{
		{"days ahead: held until from", config.Window{}, at(25, 12, 0), false, from},
		{"from reached", config.Window{}, from, true, time.Time{}},
		{"late, even past the peak: build", config.Window{}, at(30, 3, 0), true, time.Time{}},
		{"a window between from and by: held until from", config.Window{Start: "22:00", End: "23:00", TimeZone: "UTC"}, at(25, 12, 0), false, from},
		{"window open at from: held until from", config.Window{Start: "18:00", End: "23:00", TimeZone: "UTC"}, at(29, 12, 0), false, from},
		// Saturdays only: Sunday evening to Monday is shut, so the last
		// Saturday window before the peak is the one to use.
		{"window shut until the peak: its last opening before", config.Window{Start: "10:00", End: "16:00", Days: []string{"sat"}, TimeZone: "UTC"},
			at(25, 12, 0), false, at(28, 10, 0)},
		{"window shut until the peak, last opening reached", config.Window{Start: "10:00", End: "16:00", Days: []string{"sat"}, TimeZone: "UTC"},
			at(28, 10, 0), true, time.Time{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := policy.Forecast(from, by, "weekly peak expected Mon 02:00 UTC, build by 01:20", c.w, c.now)
			check(t, v, c.pass, events.ReasonForecastHold)
			if !c.pass {
				require.True(t, c.retry.Equal(v.RetryAt), "held until %s, want %s", v.RetryAt, c.retry)
				require.Contains(t, v.Detail, "peak expected Mon 02:00 UTC")
			}
		})
	}
}

func TestCPU(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { x := now.Add(-d); return &x }
	cfg := config.CPUThrottle{Source: config.CPUSourcePg, ThresholdPct: 75, Cooldown: time.Minute, MinDelayBetweenBuilds: 30 * time.Second}
	for _, c := range []struct {
		name           string
		pct            float64
		err            error
		over, approved *time.Time
		cfg            config.CPUThrottle
		pass           bool
		reason         events.Reason
	}{
		{"idle", 10, nil, nil, nil, cfg, true, ""},
		{"at threshold", 75, nil, nil, nil, cfg, false, events.ReasonCPUThrottled},
		{"measure failed waits", 0, errors.New("x"), nil, nil, cfg, false, events.ReasonCPUUnavailable},
		{"cooldown", 10, nil, ago(30 * time.Second), nil, cfg, false, events.ReasonCPUCooldown},
		{"cooldown over", 10, nil, ago(2 * time.Minute), nil, cfg, true, ""},
		{"min delay", 10, nil, nil, ago(10 * time.Second), cfg, false, events.ReasonMinBuildDelay},
		{"min delay over", 10, nil, nil, ago(31 * time.Second), cfg, true, ""},
		{"source none keeps min delay", 99, nil, nil, ago(10 * time.Second), config.CPUThrottle{Source: config.CPUSourceNone, MinDelayBetweenBuilds: time.Minute}, false, events.ReasonMinBuildDelay},
	} {
		t.Run(c.name, func(t *testing.T) {
			check(t, policy.CPU(c.pct, c.err, c.over, c.approved, now, c.cfg), c.pass, c.reason)
		})
	}
}

func TestTokenBucket(t *testing.T) {
	b := config.Bucket{Burst: 2, PerHour: 2}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tokens := 2.0
	var ok bool
	var retry time.Time
	tokens, ok, _ = policy.Take(policy.Refill(tokens, t0, t0, b), t0, b)
	require.True(t, ok)
	tokens, ok, _ = policy.Take(policy.Refill(tokens, t0, t0, b), t0, b)
	require.True(t, ok)
	_, ok, retry = policy.Take(policy.Refill(tokens, t0, t0, b), t0, b)
	require.False(t, ok, "a third build within the burst")
	require.Equal(t, t0.Add(30*time.Minute), retry)
	require.InDelta(t, 1.0, policy.Refill(tokens, t0, t0.Add(30*time.Minute), b), 1e-9)
	require.Equal(t, 2.0, policy.Refill(0, t0, t0.Add(10*time.Hour), b), "refill is capped at the burst")
	_, ok, _ = policy.Take(0, t0, config.Bucket{})
	require.True(t, ok, "a bucket with no rate is off")
}
