package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
)

const bypassUsage = `bypass show [--json]
bypass set <feature|stage> <name> disable|enable --reason R [--for D]
bypass set <system|startup|emergency> disable|enable --reason R [--for D]
bypass stop --reason R [--for D]      (emergency stop: halts all DDL; --for recovers by itself)
bypass resume --reason R              (ends the emergency stop)`

// actor names who runs the command, for mutation_log.
func actor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + h
	}
	return name
}

func bypassCmd(ctx context.Context, load func() (config.Config, error), args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"bypass: missing subcommand; usage:\n" + bypassUsage}
	}
	switch args[0] {
	case "show":
		return bypassShow(ctx, load, args[1:], stdout)
	case "set", "stop", "resume":
		return bypassSet(ctx, load, args[0], args[1:], stdout)
	}
	return usageError{fmt.Sprintf("bypass: unknown subcommand %q", args[0])}
}

// BypassStatus is one row of `indexpilot bypass show --json`.
type BypassStatus struct {
	Level     string     `json:"level"`
	Name      string     `json:"name,omitempty"`
	Enabled   bool       `json:"enabled"`
	Source    string     `json:"source,omitempty"`
	Actor     string     `json:"actor,omitempty"`
	Since     *time.Time `json:"since,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

// BypassStatuses is the effective status of every switch at now: for each,
// the switch that disables it (config first), or enabled.
func BypassStatuses(cfg config.Config, runtime []bypass.Switch, now time.Time) []BypassStatus {
	st := bypass.NewState(cfg.Features.Bypass, func() time.Time { return now })
	st.Apply(runtime...)
	snap := st.Snapshot()
	eff := snap.Effective(now)
	var out []BypassStatus
	row := func(l bypass.Level, name string) {
		s := BypassStatus{Level: string(l), Name: name, Enabled: true}
		for _, sw := range eff {
			if sw.Level == l && sw.Name == name {
				since := sw.ChangedAt
				s = BypassStatus{Level: string(l), Name: name, Source: sw.Source, Actor: sw.Actor, Since: &since,
					ExpiresAt: sw.ExpiresAt, Reason: sw.Reason}
				break
			}
		}
		out = append(out, s)
	}
	row(bypass.LevelSystem, "")
	row(bypass.LevelEmergency, "")
	row(bypass.LevelStartup, "")
	for _, s := range config.BypassStages {
		row(bypass.LevelStage, s)
	}
	for _, f := range config.BypassFeatures {
		row(bypass.LevelFeature, f)
	}
	return out
}

func bypassShow(ctx context.Context, load func() (config.Config, error), args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bypass show", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return usageError{"bypass show: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("bypass show: unexpected argument %q", fs.Arg(0))}
	}
	cfg, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	rt, err := bypass.LoadRuntime(ctx, pool)
	if err != nil {
		return err
	}
	rows := BypassStatuses(cfg, rt, time.Now())
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LEVEL\tNAME\tSTATUS\tBY\tSINCE\tRECOVERS\tREASON")
	for _, r := range rows {
		name := r.Name
		if name == "" {
			name = "-"
		}
		if r.Enabled {
			fmt.Fprintf(tw, "%s\t%s\tenabled\t\t\t\t\n", r.Level, name)
			continue
		}
		rec := "-"
		if r.ExpiresAt != nil {
			rec = r.ExpiresAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\tDISABLED\t%s (%s)\t%s\t%s\t%s\n", r.Level, name, r.Source, r.Actor,
			r.Since.UTC().Format(time.RFC3339), rec, shorten(r.Reason, 80))
	}
	return tw.Flush()
}

func bypassSet(ctx context.Context, load func() (config.Config, error), sub string, args []string, stdout io.Writer) error {
	// Positional words first, then flags.
	var pos []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		pos, args = append(pos, args[0]), args[1:]
	}
	fs := flag.NewFlagSet("bypass "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	reason := fs.String("reason", "", "why (required; recorded in mutation_log)")
	dur := fs.Duration("for", 0, "recover automatically after this long (disabling changes only)")
	if err := fs.Parse(args); err != nil {
		return usageError{"bypass " + sub + ": " + err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("bypass %s: unexpected argument %q", sub, fs.Arg(0))}
	}
	ch := bypass.Change{Reason: *reason, For: *dur, Actor: actor()}
	switch sub {
	case "stop", "resume":
		if len(pos) > 0 {
			return usageError{fmt.Sprintf("bypass %s: unexpected argument %q", sub, pos[0])}
		}
		ch.Level, ch.Disabled = bypass.LevelEmergency, sub == "stop"
	default:
		if len(pos) < 2 {
			return usageError{"bypass set: usage:\n" + bypassUsage}
		}
		ch.Level = bypass.Level(pos[0])
		verb := pos[len(pos)-1]
		if len(pos) == 3 {
			ch.Name = pos[1]
		} else if len(pos) != 2 {
			return usageError{"bypass set: usage:\n" + bypassUsage}
		}
		switch verb {
		case "disable", "off", "pause":
			ch.Disabled = true
		case "enable", "on", "resume":
		default:
			return usageError{fmt.Sprintf("bypass set: %q is not disable or enable", verb)}
		}
	}
	if err := ch.Validate(); err != nil {
		return usageError{"bypass " + sub + ": " + err.Error()}
	}
	cfg, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	var b *bus.Bus
	if cfg.Bus.Transport == config.TransportKafka {
		// Only a shared transport reaches other processes; with the memory
		// bus running instances pick the change up on their next refresh.
		b, err = bus.New(cfg.Bus, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return err
		}
		defer b.Close()
	}
	sw, err := bypass.Set(ctx, pool, b, ch, time.Now())
	if err != nil {
		return err
	}
	what := string(sw.Level)
	if sw.Name != "" {
		what += " " + sw.Name
	}
	state := "enabled"
	if sw.Disabled {
		state = "disabled"
	}
	fmt.Fprintf(stdout, "%s %s (change %d)", what, state, sw.ChangeID)
	if sw.ExpiresAt != nil {
		fmt.Fprintf(stdout, ", recovers at %s", sw.ExpiresAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(stdout)
	// A configured switch still disables: say so rather than mislead.
	for _, c := range bypass.FromConfig(cfg.Features.Bypass, time.Now()) {
		if !sw.Disabled && c.Level == sw.Level && c.Name == sw.Name {
			fmt.Fprintf(stdout, "note: %s stays disabled by the configuration (features.bypass)\n", what)
		}
	}
	return nil
}
