package scorer_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// TestNewDeltasTriggerScoring: with an interval far beyond the test, new
// deltas alone get the target scored (after the debounce); with the
// trigger off, they do not.
func TestNewDeltasTriggerScoring(t *testing.T) {
	for _, c := range []struct {
		name     string
		debounce time.Duration
		scored   bool
	}{{"debounced", 100 * time.Millisecond, true}, {"interval only", 0, false}} {
		t.Run(c.name, func(t *testing.T) {
			_, d := setup(t)
			d.Config.Scorer.Interval = time.Hour
			d.Config.Scorer.TriggerDebounce = c.debounce
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			cands, err := bus.Record(ctx, d.Bus, "test.candidates", events.TypeIndexCandidateScored)
			require.NoError(t, err)
			ready := make(chan struct{})
			d.OnReady = func() { close(ready) }
			done := make(chan error, 1)
			go func() { done <- scorer.Start(ctx, d) }()
			<-ready

			stored := make(chan struct{})
			go func() {
				// Stored: the scorer has it (the handler runs before the ack).
				defer close(stored)
				require.Eventually(t, func() bool {
					var n int
					_ = d.Control.QueryRow(ctx, "select count(*) from indexpilot.workload_stats").Scan(&n)
					return n == 1
				}, 30*time.Second, 10*time.Millisecond)
			}()
			require.NoError(t, d.Bus.Publish(ctx, "test", "",
				querystat("101", "SELECT id, status FROM orders WHERE customer_id = $1", 500, end)))
			<-stored
			if c.scored {
				require.Eventually(t, func() bool { return len(cands.All()) >= 1 }, 30*time.Second, 20*time.Millisecond,
					"new deltas did not trigger scoring")
			} else {
				require.Never(t, func() bool { return len(cands.All()) > 0 }, time.Second, 20*time.Millisecond,
					"scored without the trigger before the interval")
			}
			cancel()
			require.NoError(t, <-done)
		})
	}
}
