package collector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/collector/internal/delta"
	"github.com/indexpilot/indexpilot/services/collector/internal/pgstat"
)

// Window sources of a History (events.QueryStatObserved's history windows).
const (
	HistoryStatsSince = events.WindowHistoryStatsSince
	HistoryStatsReset = events.WindowHistoryStatsReset
	HistoryUnknown    = events.WindowHistoryUnknown
)

// History is what a database's statistics views already hold, read once
// (`indexpilot advise`): every statement's counters since
// pg_stat_statements started counting them, as one window per statement.
//
// It holds no table statistics: the write counters of pg_stat_user_tables
// since their reset include whatever loaded the tables (a restore, a bulk
// load), which is no rate of writes an index would pay for; the pipeline
// measures writes between its polls instead.
type History struct {
	// QueryStats has one event per statement with calls, its window
	// ending at At and starting at its stats_since (PostgreSQL 17+), else
	// at the view's last full reset, else (unknown) at At.
	QueryStats []*events.QueryStatObserved
	// Since is the earliest window start (zero when unknown), At the read.
	Since, At time.Time
	// Source is how the window is known: HistoryStatsSince,
	// HistoryStatsReset or HistoryUnknown.
	Source string
	// Read is the number of pg_stat_statements rows of the database read
	// (a row without a query id, another role's statement this role may
	// not see, is not counted).
	Read int
}

// ErrNoStatements says why pg_stat_statements cannot be read in a
// database; the error wrapping it says what to do.
var ErrNoStatements = errors.New("pg_stat_statements unavailable")

// ReadHistory reads the history q's database holds, for target, at at. It
// only reads: the statements carry the collector's marker and are left out
// of the history themselves.
func ReadHistory(ctx context.Context, q postgres.Querier, target string, at time.Time) (*History, error) {
	src, err := pgstat.ProbeStatements(ctx, q)
	if err != nil {
		return nil, err
	}
	if !src.Usable {
		return nil, fmt.Errorf("%w: %s", ErrNoStatements, src.Reason)
	}
	sample, err := pgstat.ReadStatements(ctx, q, src, at, nil)
	if errors.Is(err, pgstat.ErrNotLoaded) {
		return nil, fmt.Errorf("%w: %s (add it to shared_preload_libraries and restart the server)", ErrNoStatements, pgstat.ErrNotLoaded)
	}
	if err != nil {
		return nil, err
	}
	// The collector's first poll of a target: the history, one window per
	// statement (delta.Compute with no baseline).
	h := &History{At: sample.At, Read: len(sample.Rows)}
	h.QueryStats, _ = delta.Compute(target, nil, sample)
	switch {
	case src.HasStatsSince():
		// Each statement's own start (PostgreSQL 17+).
		h.Source = HistoryStatsSince
		for _, ev := range h.QueryStats {
			if h.Since.IsZero() || ev.WindowStart.Before(h.Since) {
				h.Since = ev.WindowStart
			}
		}
	case !sample.StatsReset.IsZero():
		h.Since, h.Source = sample.StatsReset, HistoryStatsReset
	default:
		h.Source = HistoryUnknown
	}
	return h, nil
}
