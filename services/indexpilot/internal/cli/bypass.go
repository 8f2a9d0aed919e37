package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"text/tabwriter"
	"time"

	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/indexpilot/internal/decisions"
)

const bypassUsage = "indexpilot bypass set <feature|stage> <name> disable|enable, or set <system|startup|emergency> disable|enable " +
	"(see indexpilot bypass set --help)"

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

// BypassStatus is one row of `indexpilot bypass show --json` (the
// dashboard's API serves the same struct).
type BypassStatus = decisions.BypassStatus

func bypassShow(ctx context.Context, load func() (config.Config, error), asJSON bool, stdout io.Writer) error {
	cfg, pool, err := connect(ctx, load)
	if err != nil {
		return err
	}
	defer pool.Close()
	rows, err := decisions.LoadBypass(ctx, pool, cfg, time.Now())
	if err != nil {
		return err
	}
	if asJSON {
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

// bypassSet is `bypass set|stop|resume`: pos are the positional words
// (level, name, verb of set), reason and dur the --reason and --for flags.
func bypassSet(ctx context.Context, load func() (config.Config, error), sub string, pos []string, reason string, dur time.Duration,
	stdout io.Writer) error {
	ch := bypass.Change{Reason: reason, For: dur, Actor: actor()}
	switch sub {
	case "stop", "resume":
		if len(pos) > 0 {
			return usageError{fmt.Sprintf("bypass %s: unexpected argument %q", sub, pos[0])}
		}
		ch.Level, ch.Disabled = bypass.LevelEmergency, sub == "stop"
	default:
		if len(pos) < 2 {
			return usageError{"bypass set: want LEVEL [NAME] disable|enable; usage: " + bypassUsage}
		}
		ch.Level = bypass.Level(pos[0])
		verb := pos[len(pos)-1]
		if len(pos) == 3 {
			ch.Name = pos[1]
		} else if len(pos) != 2 {
			return usageError{"bypass set: want LEVEL [NAME] disable|enable; usage: " + bypassUsage}
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
	sw, stillDisabled, err := decisions.SetBypass(ctx, cfg, pool, ch, time.Now())
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
	if stillDisabled {
		fmt.Fprintf(stdout, "note: %s stays disabled by the configuration (features.bypass)\n", what)
	}
	return nil
}
