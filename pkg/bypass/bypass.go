// Package bypass is IndexPilot's 4-level bypass, readable by every stage.
//
// The levels are feature (auto_indexing, index_removal, stats_collection,
// expression_checks, mutation_logging), stage (collector, scorer,
// gatekeeper, executor: pause one), system (everything off: no DDL, no
// what-if load) and startup (start without touching the metadata schema),
// plus the emergency stop, which halts all DDL at once and can recover by
// itself after a set time. Each switch can be set in the config file
// (features.bypass), by environment variable (INDEXPILOT_FEATURES_BYPASS_*)
// and at run time with Set (`indexpilot bypass set`). A run-time change is
// persisted in indexpilot.bypass_state with a mutation_log row and a
// NOTIFY on NotifyChannel in the same transaction; every running instance
// LISTENs on the control database, whatever the bus transport, and
// re-reads the table when notified. The change is also published on the
// control topic (control.bypass_changed.v1) when the caller has a bus, and
// each instance re-reads the table every features.bypass.refresh_interval,
// so a missed notification costs at most that.
//
// Any level that disables wins: a switch disabled by the configuration
// cannot be enabled at run time, and enabling one level never clears
// another. Re-enabling needs the level (and source) that disabled it.
//
// # Using it from a stage
//
//	st, err := bypass.Watch(ctx, d, "executor") // d is the stage.Deps
//	...
//	if ok, why := st.AllowsDDL(config.FeatureAutoIndexing); !ok {
//		// do not start the build; why.Reason is typed (events.Reason*)
//	}
//	stopped, why := st.Stopped()      // the emergency stop (or system off):
//	                                  // cancel in-flight builds, claim nothing
//	bctx, cancel := st.GuardDDL(ctx)  // cancelled on an emergency stop
//	defer cancel()
//	// run CREATE INDEX CONCURRENTLY on bctx; when it is cancelled,
//	// context.Cause(bctx) is ErrEmergencyStop: drop the INVALID leftover
//	// and re-queue the build.
//
// Allows(level, name) answers for any level; Changed returns a channel
// closed at the next change, for loops that want to wake up.
package bypass

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
)

// Level is one level of the bypass.
type Level string

// Levels, from the widest.
const (
	LevelSystem    Level = "system"
	LevelEmergency Level = "emergency"
	LevelStage     Level = "stage"
	LevelFeature   Level = "feature"
	LevelStartup   Level = "startup"
)

// Levels lists every level in the order `bypass show` prints them.
var Levels = []Level{LevelSystem, LevelEmergency, LevelStartup, LevelStage, LevelFeature}

// Sources of a switch.
const (
	SourceConfig  = "config" // file or INDEXPILOT_* environment
	SourceRuntime = "runtime"
)

// ErrEmergencyStop is the cause of a GuardDDL context cancelled by an
// emergency stop (or the system level being switched off).
var ErrEmergencyStop = errors.New("emergency stop: all DDL halted")

// Switch is one bypass switch as one source sets it.
type Switch struct {
	Level     Level      `json:"level"`
	Name      string     `json:"name"`
	Disabled  bool       `json:"disabled"`
	Reason    string     `json:"reason"`
	Actor     string     `json:"actor"`
	Source    string     `json:"source"`
	ChangeID  int64      `json:"change_id"`
	ChangedAt time.Time  `json:"changed_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Active reports whether s disables what it names at now: disabled and not
// yet expired.
func (s Switch) Active(now time.Time) bool {
	return s.Disabled && (s.ExpiresAt == nil || now.Before(*s.ExpiresAt))
}

type key struct {
	level Level
	name  string
}

// Denial says which switch disables something and why.
type Denial struct {
	// Reason is the typed reason a verdict records.
	Reason events.Reason `json:"reason"`
	Switch Switch        `json:"switch"`
}

// Detail is a one-line human explanation.
func (d Denial) Detail() string {
	s := d.Switch
	what := string(s.Level)
	if s.Name != "" {
		what += " " + s.Name
	}
	out := fmt.Sprintf("%s disabled by %s (%s) since %s: %s", what, s.Source, s.Actor,
		s.ChangedAt.UTC().Format(time.RFC3339), s.Reason)
	if s.ExpiresAt != nil {
		out += ", recovers at " + s.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return out
}

func reasonOf(l Level) events.Reason {
	switch l {
	case LevelSystem:
		return events.ReasonBypassSystem
	case LevelEmergency:
		return events.ReasonEmergencyStop
	case LevelStage:
		return events.ReasonBypassStage
	default:
		return events.ReasonBypassFeature
	}
}

// Snapshot is the bypass at one moment: the configured switches and the
// latest run-time change of each switch.
type Snapshot struct {
	Config  []Switch
	Runtime map[key]Switch
}

// FromConfig returns the switches the configuration disables; loadedAt is
// shown as their change time.
func FromConfig(b config.Bypass, loadedAt time.Time) []Switch {
	reason := b.Reason
	if reason == "" {
		reason = "set in the configuration"
	}
	mk := func(l Level, name string) Switch {
		return Switch{Level: l, Name: name, Disabled: true, Reason: reason, Actor: "config", Source: SourceConfig, ChangedAt: loadedAt}
	}
	var out []Switch
	if b.System {
		out = append(out, mk(LevelSystem, ""))
	}
	if b.Startup {
		out = append(out, mk(LevelStartup, ""))
	}
	for _, s := range b.Stages {
		out = append(out, mk(LevelStage, s))
	}
	for _, f := range b.Features {
		out = append(out, mk(LevelFeature, f))
	}
	return out
}

// active returns the active switch of (l, name) from any source, config
// first.
func (s Snapshot) active(l Level, name string, now time.Time) (Switch, bool) {
	for _, c := range s.Config {
		if c.Level == l && c.Name == name && c.Active(now) {
			return c, true
		}
	}
	if r, ok := s.Runtime[key{l, name}]; ok && r.Active(now) {
		return r, true
	}
	return Switch{}, false
}

func (s Snapshot) first(now time.Time, checks ...key) (bool, Denial) {
	for _, k := range checks {
		if sw, ok := s.active(k.level, k.name, now); ok {
			return false, Denial{Reason: reasonOf(k.level), Switch: sw}
		}
	}
	return true, Denial{}
}

// Allows reports whether level/name is allowed at now. A feature or stage
// is disabled by its own switch or by the system level; the emergency
// level by the system level or an emergency stop; startup only by itself.
func (s Snapshot) Allows(l Level, name string, now time.Time) (bool, Denial) {
	switch l {
	case LevelFeature, LevelStage:
		return s.first(now, key{LevelSystem, ""}, key{l, name})
	case LevelEmergency:
		return s.first(now, key{LevelSystem, ""}, key{LevelEmergency, ""})
	case LevelStartup:
		return s.first(now, key{LevelStartup, ""})
	default:
		return s.first(now, key{LevelSystem, ""})
	}
}

// AllowsDDL reports whether DDL for feature may start at now: not when the
// system is off, an emergency stop is on, the executor stage is paused or
// the feature is disabled.
func (s Snapshot) AllowsDDL(feature string, now time.Time) (bool, Denial) {
	return s.first(now, key{LevelSystem, ""}, key{LevelEmergency, ""}, key{LevelStage, "executor"}, key{LevelFeature, feature})
}

// Effective lists every switch that disables something at now, with its
// source, widest level first.
func (s Snapshot) Effective(now time.Time) []Switch {
	var out []Switch
	for _, c := range s.Config {
		if c.Active(now) {
			out = append(out, c)
		}
	}
	for _, r := range s.Runtime {
		if r.Active(now) {
			out = append(out, r)
		}
	}
	rank := map[Level]int{}
	for i, l := range Levels {
		rank[l] = i
	}
	sort.SliceStable(out, func(i, j int) bool {
		if rank[out[i].Level] != rank[out[j].Level] {
			return rank[out[i].Level] < rank[out[j].Level]
		}
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Source < out[j].Source
	})
	return out
}

// RuntimeSwitches lists the latest run-time change of every switch, enabled
// or not, for `bypass show --all`.
func (s Snapshot) RuntimeSwitches() []Switch {
	out := make([]Switch, 0, len(s.Runtime))
	for _, r := range s.Runtime {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ChangeID < out[j].ChangeID })
	return out
}

// merge applies a run-time switch if it is newer than what is known.
func (s *Snapshot) merge(sw Switch) bool {
	if s.Runtime == nil {
		s.Runtime = map[key]Switch{}
	}
	k := key{sw.Level, sw.Name}
	if old, ok := s.Runtime[k]; ok && old.ChangeID >= sw.ChangeID {
		return false
	}
	sw.Source = SourceRuntime
	s.Runtime[k] = sw
	return true
}

// ValidName checks that name fits level.
func ValidName(l Level, name string) error {
	switch l {
	case LevelFeature:
		for _, f := range config.BypassFeatures {
			if f == name {
				return nil
			}
		}
		return fmt.Errorf("feature %q is not one of %v", name, config.BypassFeatures)
	case LevelStage:
		for _, f := range config.BypassStages {
			if f == name {
				return nil
			}
		}
		return fmt.Errorf("stage %q is not one of %v", name, config.BypassStages)
	case LevelSystem, LevelStartup, LevelEmergency:
		if name != "" {
			return fmt.Errorf("level %s takes no name", l)
		}
		return nil
	}
	return fmt.Errorf("level %q is not feature, stage, system, startup or emergency", l)
}
