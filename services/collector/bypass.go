package collector

import (
	"context"
	"log/slog"
	"time"

	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// recheckPaused is how often a paused loop re-reads the bypass even
// without a change event (timed switches end by themselves).
const recheckPaused = time.Second

// watchBypass returns the collector's live bypass state: watched through
// the control database and the control topic when d.Control is set, else
// the configured switches only (tests and control-less runs).
func watchBypass(ctx context.Context, d stage.Deps) (*bypass.State, error) {
	if d.Control == nil {
		return bypass.NewState(d.Config.Features.Bypass, d.Clock), nil
	}
	return bypass.Watch(ctx, d, Name)
}

// gate tells the collector's loops whether to collect: not while the
// collector stage is paused, the system level is off or the
// stats_collection feature is disabled. A nil gate never pauses.
type gate struct {
	st *bypass.State
}

// paused reports whether collection is off now and why.
func (g *gate) paused() (bool, string) {
	if g == nil || g.st == nil {
		return false, ""
	}
	if ok, why := g.st.Allows(bypass.LevelStage, Name); !ok {
		return true, why.Detail()
	}
	if ok, why := g.st.Allows(bypass.LevelFeature, config.FeatureStatsCollection); !ok {
		return true, why.Detail()
	}
	return false, ""
}

func (g *gate) changed() <-chan struct{} {
	if g == nil || g.st == nil {
		return nil
	}
	return g.st.Changed()
}

// wait blocks while collection is paused, logging the pause and the
// resumption of what once. It returns false when ctx ended.
func (g *gate) wait(ctx context.Context, log *slog.Logger, what string) bool {
	logged := false
	for {
		ch := g.changed()
		p, why := g.paused()
		if !p {
			if logged {
				log.Info(what + " resumed: the bypass allows collection again")
			}
			return ctx.Err() == nil
		}
		if !logged {
			log.Info(what+" paused by the bypass", "why", why)
			logged = true
		}
		t := time.NewTimer(recheckPaused)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-ch:
		case <-t.C:
		}
		t.Stop()
	}
}

// whileAllowed returns a context that is cancelled as soon as collection
// gets paused (for the long-running replication stream).
func (g *gate) whileAllowed(ctx context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithCancel(ctx)
	if g == nil || g.st == nil {
		return cctx, cancel
	}
	go func() {
		for {
			ch := g.changed()
			if p, _ := g.paused(); p {
				cancel()
				return
			}
			t := time.NewTimer(recheckPaused)
			select {
			case <-cctx.Done():
				t.Stop()
				return
			case <-ch:
			case <-t.C:
			}
			t.Stop()
		}
	}()
	return cctx, cancel
}
