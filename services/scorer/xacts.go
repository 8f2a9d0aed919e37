package scorer

import (
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
)

// The write model gives WAL per write transaction. pg_stat_statements
// counts statements, several to a transaction (pgbench's TPC-B
// transaction holds four writes), so the workload's write transactions
// come from the server's transaction counter when the table samples carry
// it: only a transaction that writes takes an xid, and its increase over
// the window counts the write transactions of the whole server, every
// database (and IndexPilot's own control writes when the control database
// is there too). Capped by the write statements' calls, a busy
// multi-database server falls back to counting statements.

// windowWriteTxns is the write transactions of the workload in the window,
// given the calls of its write statements and the server's write
// transactions (known when the window's samples carry the counter), and
// the basis it counts on: events.WALPerWriteTxn when the server's count is
// known, above 0 and at most the statements' calls; otherwise the calls
// and events.WALPerWriteStatement (a server busier than the workload, with
// other databases, is not this workload's transaction count).
func windowWriteTxns(stmtCalls, serverTxns float64, known bool) (float64, string) {
	if known && serverTxns > 0 && serverTxns <= stmtCalls {
		return serverTxns, events.WALPerWriteTxn
	}
	return stmtCalls, events.WALPerWriteStatement
}

// serverWriteTxns is the increase of the server's transaction counter over
// the window: between the first and the last poll whose table samples of
// the target fall in the window (the samples the tables' write counters
// come from, see writes). known is false with fewer than two polls, when a
// poll lacks the counter (an older collector or scorer), or when it went
// back (another server behind the target).
func (sel *selector) serverWriteTxns() (txns float64, known bool, err error) {
	from, to := sel.windowEnd.Add(-sel.window), sel.windowEnd.Add(sel.s.deps.Config.Collector.Interval)
	var polls []*int64
	if sel.retained != nil {
		polls = retainedXactNext(sel.retained, sel.target, from, to)
	} else {
		rows, err := sel.s.deps.Control.Query(sel.ctx, `/* indexpilot:scorer */
select max(server_xact_next)
  from indexpilot.table_stat_samples
 where target = $1 and observed_at > $2 and observed_at <= $3
 group by observed_at
 order by observed_at`, sel.target, from, to)
		if err != nil {
			return 0, false, fmt.Errorf("read server transaction counter: %w", err)
		}
		if polls, err = pgx.CollectRows(rows, pgx.RowTo[*int64]); err != nil {
			return 0, false, fmt.Errorf("read server transaction counter: %w", err)
		}
	}
	txns, known = xactIncrease(polls)
	return txns, known, nil
}

// xactIncrease is the last poll's counter minus the first's; known as for
// serverWriteTxns.
func xactIncrease(polls []*int64) (float64, bool) {
	if len(polls) < 2 {
		return 0, false
	}
	for i, p := range polls {
		if p == nil || (i > 0 && *p < *polls[i-1]) {
			return 0, false
		}
	}
	return float64(*polls[len(polls)-1] - *polls[0]), true
}

// retainedXactNext is the server counter of each poll of target in r's
// table statistics observed between from and to, in time order: the
// largest its tables carry, as the stored samples are read (nil for a poll
// none of whose tables carries it).
func retainedXactNext(r *Retained, target string, from, to time.Time) []*int64 {
	byPoll := map[time.Time]*int64{}
	for _, ts := range r.TableStats {
		if ts == nil || ts.Target != target || !ts.ObservedAt.After(from) || ts.ObservedAt.After(to) {
			continue
		}
		at := ts.ObservedAt.UTC()
		if cur, seen := byPoll[at]; !seen || cur == nil || (ts.ServerXactNext != nil && *ts.ServerXactNext > *cur) {
			byPoll[at] = ts.ServerXactNext
		}
	}
	at := make([]time.Time, 0, len(byPoll))
	for t := range byPoll {
		at = append(at, t)
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	out := make([]*int64, len(at))
	for i, t := range at {
		out[i] = byPoll[t]
	}
	return out
}
