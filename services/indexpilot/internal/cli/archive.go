package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
)

// archiveCmd moves mutation_log rows older than --older-than into
// indexpilot.mutation_log_archive (metadata.ArchiveLog).
func archiveCmd(ctx context.Context, load func() (config.Config, error), olderThan string, dryRun bool, stdout io.Writer) error {
	if olderThan == "" {
		return usageError{"archive: --older-than is required (e.g. 720h or 90d)"}
	}
	age, err := parseAge(olderThan)
	if err != nil {
		return usageError{fmt.Sprintf("archive: --older-than %q is not a positive duration (e.g. 720h or 90d)", olderThan)}
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if bypass.NewState(cfg.Features.Bypass, nil).StartupBypassed() {
		return fmt.Errorf("archive: the startup bypass is set (features.bypass.startup): the metadata schema was left untouched")
	}
	_, pool, err := connect(ctx, func() (config.Config, error) { return cfg, nil })
	if err != nil {
		return err
	}
	defer pool.Close()
	cutoff := time.Now().Add(-age)
	n, err := metadata.ArchiveLog(ctx, pool, cutoff, 0, dryRun)
	if err != nil {
		return err
	}
	at := cutoff.UTC().Format(time.RFC3339)
	if dryRun {
		fmt.Fprintf(stdout, "dry run: %d mutation_log rows older than %s (before %s) would move to %s.mutation_log_archive\n",
			n, olderThan, at, metadata.Schema)
		return nil
	}
	fmt.Fprintf(stdout, "moved %d mutation_log rows older than %s (before %s) to %s.mutation_log_archive\n",
		n, olderThan, at, metadata.Schema)
	return nil
}

// parseAge parses a positive Go duration, or a whole number of days ("90d").
func parseAge(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 100*365 {
			return 0, fmt.Errorf("bad day count %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return d, nil
}
