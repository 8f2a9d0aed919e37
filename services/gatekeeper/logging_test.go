package gatekeeper_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
)

// TestMutationLoggingOffKeepsStateChangesAndBypassRows: with the
// mutation_logging feature disabled at run time, recommendations still
// move through their states but write no audit rows; the bypass changes
// that turned logging off and on again are logged, and lineage resumes
// from the last row written.
func TestMutationLoggingOffKeepsStateChangesAndBypassRows(t *testing.T) {
	d := newDirect(t, nil)
	d.cpu.pct.Store(95)
	c := candidate(97, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	d.handle(t, c)
	state, _ := d.rec(t, c)
	require.Equal(t, "deferred", state)
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.mutation_log where stage = 'gatekeeper'"))

	_, err := bypass.Set(d.ctx, d.db.Pool, nil, bypass.Change{Level: bypass.LevelFeature, Name: config.FeatureMutationLogging,
		Disabled: true, Reason: "too much audit volume", Actor: "alice"}, time.Now())
	require.NoError(t, err)
	d.cpu.pct.Store(10)
	n, err := d.g.Recheck(d.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	state, reason := d.rec(t, c)
	require.Equal(t, "approved", state, "the state change happens with logging off")
	require.Equal(t, string(events.ReasonApplyMode), reason)
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.mutation_log where stage = 'gatekeeper'"),
		"an audit row was written with mutation_logging off")
	require.Equal(t, 1, d.count(t, `select count(*) from indexpilot.recommendations r join indexpilot.mutation_log m on m.id = r.last_log_id
 where m.outcome = 'deferred'`), "last_log_id stays on the last row written")
	require.Equal(t, 1, d.count(t, `select count(*) from indexpilot.mutation_log
 where stage = 'bypass' and outcome = 'disabled' and evidence->>'name' = 'mutation_logging' and evidence->>'actor' = 'alice'`),
		"who turned logging off is on record")

	_, err = bypass.Set(d.ctx, d.db.Pool, nil, bypass.Change{Level: bypass.LevelFeature, Name: config.FeatureMutationLogging,
		Reason: "audit back on", Actor: "bob"}, time.Now())
	require.NoError(t, err)
	require.Equal(t, 1, d.count(t, "select count(*) from indexpilot.mutation_log where stage = 'bypass' and outcome = 'enabled'"))
	_, err = gatekeeper.Reject(d.ctx, d.db.Pool, events.RecommendationID(c.Target, c.Index), "bob", "not wanted")
	require.NoError(t, err)
	require.Equal(t, 1, d.count(t, `select count(*) from indexpilot.mutation_log m join indexpilot.mutation_log p on p.id = m.parent_id
 where m.stage = 'gatekeeper' and m.outcome = 'approved->rejected' and p.outcome = 'deferred'`), "lineage resumes from the last row written")
}
