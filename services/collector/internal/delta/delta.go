// Package delta turns successive reads of pg_stat_statements into the
// per-statement changes the collector publishes. It is pure: a sample and
// the previous baseline in, events and the next baseline out.
//
// pg_stat_statements keeps one row per (user, database, query id,
// top-level flag). The caller reads only the target's database; here the
// rows of one query id are summed across users and nesting levels, but each
// row is compared with its own previous value, so that one row being
// evicted and coming back never distorts the sum.
package delta

import (
	"sort"
	"time"

	"github.com/indexpilot/indexpilot/events"
)

// Counters are the cumulative counters of one pg_stat_statements row.
type Counters struct {
	Calls           int64
	TotalExecTimeMs float64
	Rows            int64
	SharedBlksHit   int64
	SharedBlksRead  int64
}

// sub returns c - old, or false when any counter went down: the row was
// reset or evicted and has come back since old was read.
func (c Counters) sub(old Counters) (Counters, bool) {
	d := Counters{
		Calls:           c.Calls - old.Calls,
		TotalExecTimeMs: c.TotalExecTimeMs - old.TotalExecTimeMs,
		Rows:            c.Rows - old.Rows,
		SharedBlksHit:   c.SharedBlksHit - old.SharedBlksHit,
		SharedBlksRead:  c.SharedBlksRead - old.SharedBlksRead,
	}
	if d.Calls < 0 || d.TotalExecTimeMs < 0 || d.Rows < 0 || d.SharedBlksHit < 0 || d.SharedBlksRead < 0 {
		return Counters{}, false
	}
	return d, true
}

func (c *Counters) add(d Counters) {
	c.Calls += d.Calls
	c.TotalExecTimeMs += d.TotalExecTimeMs
	c.Rows += d.Rows
	c.SharedBlksHit += d.SharedBlksHit
	c.SharedBlksRead += d.SharedBlksRead
}

// Row is one pg_stat_statements row of the target's database.
type Row struct {
	// QueryID is the statement's query id in decimal; rows without one
	// (another role's statement without pg_read_all_stats) are ignored.
	QueryID  string
	UserID   uint32
	TopLevel bool
	// Query is the normalized text ("" when unreadable).
	Query string
	// StatsSince is when the entry started counting (pg_stat_statements
	// 1.11, PostgreSQL 17+; zero before). When it changes, the entry was
	// evicted or reset and came back, even if its counters are now higher
	// than before, so the row is baselined again.
	StatsSince time.Time
	Counters
}

// Sample is one read of pg_stat_statements.
type Sample struct {
	// At is the poll time; it ends the window of every event computed from
	// this sample and starts the next one.
	At time.Time
	// StatsReset is pg_stat_statements_info.stats_reset; a change means the
	// whole view was reset.
	StatsReset time.Time
	Rows       []Row
}

type rowKey struct {
	userID   uint32
	topLevel bool
}

type rowState struct {
	Counters
	statsSince time.Time
}

type statement struct {
	// since starts the statement's next window: the poll that last
	// baselined or published it.
	since time.Time
	// source is the WindowSource of the next window: "" for a delta, a
	// history source for a first window that could not be published.
	source string
	rows   map[rowKey]rowState
}

// Baseline is what the collector remembers of one target between polls:
// the time of the poll, the last counters of every workload row, grouped
// by query id, and since when each statement has been counted. A nil
// *Baseline is the state of a collector that has not polled yet.
type Baseline struct {
	at         time.Time
	statsReset time.Time
	stmts      map[string]*statement
}

// Statements is the number of statements in the baseline.
func (b *Baseline) Statements() int {
	if b == nil {
		return 0
	}
	return len(b.stmts)
}

// Compute compares cur with prev and returns one QueryStatObserved per
// statement whose calls went up, ordered by query id, and the baseline for
// the next poll (which assumes every returned event gets published; see
// Restore). Rows excluded by Excluded are dropped first.
//
// When prev is nil (the first poll of the target, or a collector restart)
// the counters pg_stat_statements already holds are the first window, the
// history (see History): nothing the server knows is thrown away. A
// history window covers whatever the collector published of the same
// statement since its start, so a restart re-publishing it never counts a
// call twice in the scorer, which replaces what it covers.
//
// After the first poll, a row not in prev (a statement first seen, or a
// new user or nesting level of a known one) counts in full: it was not in
// pg_stat_statements at the previous poll, so all its counters accrued
// since then. On PostgreSQL 17+ its stats_since confirms it; a row whose
// stats_since is before the previous poll (it was there but unreadable) is
// a baseline. No event is produced, and the current counters become the
// baseline, only when:
//   - cur.StatsReset differs from the previous one (a full reset): every
//     statement is re-baselined;
//   - for one row only: its StatsSince changed (PostgreSQL 17+: evicted or
//     reset and back, whatever its counters say), or any of its counters
//     went down (evicted and back, or reset alone); the other rows of the
//     statement still count.
//
// So a delta is never negative and never counts the same call twice.
// WindowStart is the time the statement was last baselined or published
// (normally the previous poll; the history's start for a history window),
// WindowEnd is cur.At.
func Compute(target string, prev *Baseline, cur Sample) ([]*events.QueryStatObserved, *Baseline) {
	rows := append([]Row(nil), cur.Rows...)
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.QueryID != b.QueryID {
			return a.QueryID < b.QueryID
		}
		if a.UserID != b.UserID {
			return a.UserID < b.UserID
		}
		return !a.TopLevel && b.TopLevel
	})

	next := &Baseline{at: cur.At, statsReset: cur.StatsReset, stmts: map[string]*statement{}}
	first := prev == nil
	reset := !first && !prev.statsReset.Equal(cur.StatsReset)

	type sum struct {
		query  string
		since  time.Time
		source string
		// historySince is the earliest stats_since of the statement's
		// rows (a history window on PostgreSQL 17+).
		historySince time.Time
		c            Counters
	}
	sums := map[string]*sum{}
	var order []string
	for _, r := range rows {
		if r.QueryID == "" || Excluded(r.Query) {
			continue
		}
		st := next.stmts[r.QueryID]
		if st == nil {
			st = &statement{since: cur.At, rows: map[rowKey]rowState{}}
			next.stmts[r.QueryID] = st
		}
		k := rowKey{userID: r.UserID, topLevel: r.TopLevel}
		st.rows[k] = rowState{Counters: r.Counters, statsSince: r.StatsSince}

		s := sums[r.QueryID]
		if s == nil {
			s = &sum{query: r.Query}
			sums[r.QueryID] = s
			order = append(order, r.QueryID)
		}
		switch {
		case first:
			s.c.add(r.Counters)
			if !r.StatsSince.IsZero() && (s.historySince.IsZero() || r.StatsSince.Before(s.historySince)) {
				s.historySince = r.StatsSince
			}
			continue
		case reset:
			continue
		}
		old, seen := prev.stmts[r.QueryID]
		if !seen {
			// First sight after the first poll: everything since then.
			s.since = prev.at
			if accruedSince(r, prev.at) {
				s.c.add(r.Counters)
			}
			continue
		}
		s.since, s.source = old.since, old.source
		oldRow, ok := old.rows[k]
		switch {
		case !ok:
			if accruedSince(r, prev.at) {
				s.c.add(r.Counters)
			}
		case !oldRow.statsSince.Equal(r.StatsSince):
			// Evicted or reset and back: a baseline.
		default:
			if d, ok := r.Counters.sub(oldRow.Counters); ok {
				s.c.add(d)
			}
		}
	}

	var out []*events.QueryStatObserved
	for _, id := range order {
		s := sums[id]
		if first {
			s.since, s.source = History(s.historySince, cur.StatsReset, cur.At)
		}
		if s.c.Calls <= 0 {
			continue
		}
		out = append(out, &events.QueryStatObserved{
			Target:          target,
			QueryID:         id,
			Query:           s.query,
			WindowStart:     s.since,
			WindowEnd:       cur.At,
			Calls:           s.c.Calls,
			TotalExecTimeMs: s.c.TotalExecTimeMs,
			MeanExecTimeMs:  s.c.TotalExecTimeMs / float64(s.c.Calls),
			Rows:            s.c.Rows,
			SharedBlksHit:   s.c.SharedBlksHit,
			SharedBlksRead:  s.c.SharedBlksRead,
			WindowSource:    s.source,
		})
	}
	return out, next
}

// History is the start and the WindowSource of a statement's history
// window ending at at: its stats_since when the server has it (PostgreSQL
// 17+), else the view's last full reset (14+), else unknown (the window
// then starts where it ends).
func History(statsSince, statsReset, at time.Time) (time.Time, string) {
	switch {
	case !statsSince.IsZero():
		return statsSince, events.WindowHistoryStatsSince
	case !statsReset.IsZero():
		return statsReset, events.WindowHistoryStatsReset
	default:
		return at, events.WindowHistoryUnknown
	}
}

// accruedSince reports whether a row absent at the poll at has counters
// that all accrued after it: always, unless its stats_since (PostgreSQL
// 17+) says it was counting before (it was there but not read, e.g. its
// text was unreadable).
func accruedSince(r Row, at time.Time) bool {
	return r.StatsSince.IsZero() || !r.StatsSince.Before(at)
}

// Restore puts back, for an event Compute returned that could not be
// published, the statement as prev had it: the next poll then reports
// those calls again, over the longer window, instead of losing them. A
// statement prev did not have (a history window, or a first sight) is kept
// with zero counters, so that the next poll counts it in full again from
// the same window start and source.
func (b *Baseline) Restore(prev *Baseline, ev *events.QueryStatObserved) {
	if b == nil || ev == nil {
		return
	}
	cur := b.stmts[ev.QueryID]
	if prev == nil || prev.stmts[ev.QueryID] == nil {
		if cur == nil {
			return
		}
		rows := make(map[rowKey]rowState, len(cur.rows))
		for k, r := range cur.rows {
			rows[k] = rowState{statsSince: r.statsSince}
		}
		b.stmts[ev.QueryID] = &statement{since: ev.WindowStart, source: ev.WindowSource, rows: rows}
		return
	}
	old := prev.stmts[ev.QueryID]
	rows := make(map[rowKey]rowState, len(old.rows))
	for k, c := range old.rows {
		rows[k] = c
	}
	if cur != nil {
		// A row first seen now counted in full: again at the next poll.
		for k, r := range cur.rows {
			if _, ok := rows[k]; !ok {
				rows[k] = rowState{statsSince: r.statsSince}
			}
		}
	}
	b.stmts[ev.QueryID] = &statement{since: old.since, source: old.source, rows: rows}
}
