package decisions

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/executor"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
)

// ErrReasonRequired is returned by Decide for a rejection without a reason.
var ErrReasonRequired = errors.New("a reason is required to reject")

// Decide records an operator's approval ("approve") or rejection
// ("reject") of the recommendation id (or a unique prefix), by actor, in
// the recommendation and mutation_log (the gatekeeper's own code path).
// It returns the full id.
func Decide(ctx context.Context, pool *pgxpool.Pool, verb, id, actor, reason string, now time.Time) (string, error) {
	switch verb {
	case "approve":
		if reason == "" {
			reason = "approved without a stated reason"
		}
		return gatekeeper.Approve(ctx, pool, id, actor, reason, now)
	case "reject":
		if reason == "" {
			return "", ErrReasonRequired
		}
		return gatekeeper.Reject(ctx, pool, id, actor, reason)
	}
	return "", errors.New("decide: the verb is approve or reject")
}

// SetBypass applies an operator's bypass change: bypass.Set records it
// (bypass_state and mutation_log) with a NOTIFY that every running instance
// hears at once, and on the kafka transport also publishes it for the
// consumers of the control topic. stillDisabled
// reports that an enabling change leaves the switch disabled by the
// configuration (features.bypass).
func SetBypass(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, ch bypass.Change, now time.Time) (sw bypass.Switch, stillDisabled bool, err error) {
	if err := ch.Validate(); err != nil {
		return bypass.Switch{}, false, err
	}
	var b *bus.Bus
	if cfg.Bus.Transport == config.TransportKafka {
		b, err = bus.New(cfg.Bus, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return bypass.Switch{}, false, err
		}
		defer b.Close()
	}
	sw, err = bypass.Set(ctx, pool, b, ch, now)
	if err != nil {
		return bypass.Switch{}, false, err
	}
	if !sw.Disabled {
		for _, c := range bypass.FromConfig(cfg.Features.Bypass, now) {
			if c.Level == sw.Level && c.Name == sw.Name {
				stillDisabled = true
			}
		}
	}
	return sw, stillDisabled, nil
}

// Restore recreates, concurrently, the index a removal (id or unique
// prefix) dropped, through the executor's own restore (which records the
// restore in mutation_log), and records who asked, from where, in a row of
// its own (stage "dashboard", action "restore_request"), also when the
// restore failed.
func Restore(ctx context.Context, cfg config.Config, pool *pgxpool.Pool, id, actor string) (executor.RestoreResult, error) {
	targets := stage.NewTargets(cfg.Targets, "dashboard")
	defer targets.Close()
	res, err := executor.Restore(ctx, pool, targets, cfg.Executor, id)
	outcome, ev := "restored", map[string]any{"removal_id": id}
	switch {
	case err != nil:
		outcome, ev["error"] = "failed", err.Error()
	case res.AlreadyExisted:
		outcome = "already_existed"
	}
	if res.RemovalID != "" {
		ev["removal_id"] = res.RemovalID
	}
	if _, lerr := metadata.AppendLog(ctx, pool, metadata.Entry{Stage: "dashboard", Action: "restore_request", Outcome: outcome,
		Target: res.Target, IndexName: res.IndexName, DDL: res.DDL, Reason: "requested by " + actor, Evidence: ev}); lerr != nil && err == nil {
		err = lerr
	}
	return res, err
}
