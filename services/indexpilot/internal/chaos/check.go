package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
)

// An invariant is a query on the run's database that returns one line per
// violation (empty when the promise holds).
type invariant struct {
	name string
	sql  string
}

// invariants are checked after every run, with the processes stopped.
var invariants = []invariant{
	{"duplicate index", `
select format('%s has %s indexes with one definition: %s', x.indrelid::regclass, count(*), string_agg(c.relname, ', '))
  from pg_index x join pg_class c on c.oid = x.indexrelid
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
 group by x.indrelid, c.relam, x.indkey::text, x.indclass::text, x.indcollation::text, x.indoption::text,
          x.indisunique, coalesce(pg_get_expr(x.indexprs, x.indrelid), ''), coalesce(pg_get_expr(x.indpred, x.indrelid), '')
having count(*) > 1`},
	{"INVALID index left", `
select format('%s on %s is INVALID', x.indexrelid::regclass, x.indrelid::regclass)
  from pg_index x where not x.indisvalid`},
	{"decision neither terminal nor pending with a reason", `
select format('recommendation %s (%s) is %s with reason %L', id, index_name, state, reason)
  from indexpilot.recommendations
 where state not in ('applied','failed','rejected','reverted','superseded','removed','proposed','approved','deferred','building','held')
    or coalesce(reason, '') = ''`},
	{"applied but not built", `
select format('recommendation %s is applied but %s.%s is missing or invalid', r.id, r.schema_name, r.index_name)
  from indexpilot.recommendations r
 where r.state = 'applied'
   and not exists (select 1 from indexpilot.removals d
                    where d.schema_name = r.schema_name and d.index_name = r.index_name and d.state = 'done')
   and not exists (select 1 from pg_index x join pg_class c on c.oid = x.indexrelid
                    join pg_namespace n on n.oid = c.relnamespace
                   where n.nspname = r.schema_name and c.relname = r.index_name and x.indisvalid)`},
	{"build and recommendation disagree", `
select format('build %s is %s but its recommendation is %s', b.recommendation_id, b.state, r.state)
  from indexpilot.builds b join indexpilot.recommendations r on r.id = b.recommendation_id
 where (b.state = 'done' and r.state not in ('applied','reverted','superseded','removed'))
    or (b.state = 'failed' and r.state not in ('failed','superseded'))
    or (r.state = 'applied' and b.state <> 'done')`},
	{"recommendation lost", `
select format('recommendation %s (%s) is approved (since %s) but never reached the executor', r.id, r.index_name, r.updated_at)
  from indexpilot.recommendations r
 where r.state = 'approved'
   and not exists (select 1 from indexpilot.builds b where b.recommendation_id = r.id)`},
	{"not exactly one outcome per build", `
select format('build %s (%s) is %s with %s terminal outcomes in mutation_log: %s', b.recommendation_id, b.index_name, b.state,
              count(m.id), coalesce(string_agg(m.outcome, ',' order by m.id), '-'))
  from indexpilot.builds b
  left join indexpilot.mutation_log_all m
         on m.recommendation_id = b.recommendation_id and m.stage = 'executor' and m.action = 'build'
        and m.outcome in ('built','already_exists','failed')
 group by b.recommendation_id, b.index_name, b.state
having count(m.id) <> case when b.state in ('done','failed') then 1 else 0 end`},
}

// Check evaluates every invariant on the run's database q and returns one
// line per violation, prefixed with the invariant's name. maxLockWait is
// the longest wait of an application statement on IndexPilot's locks.
func Check(ctx context.Context, q postgres.Querier, maxLockWait time.Duration) []string {
	var out []string
	for _, inv := range invariants {
		rows, err := q.Query(ctx, marker+inv.sql)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: cannot check: %s", inv.name, postgres.Describe(err)))
			continue
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				out = append(out, fmt.Sprintf("%s: cannot check: %s", inv.name, postgres.Describe(err)))
				break
			}
			out = append(out, inv.name+": "+line)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			out = append(out, fmt.Sprintf("%s: cannot check: %s", inv.name, postgres.Describe(err)))
		}
	}
	if limit := LockTimeout + time.Second; maxLockWait > limit {
		out = append(out, fmt.Sprintf("lock wait: an application statement waited %s on IndexPilot (limit %s)",
			maxLockWait.Round(time.Millisecond), limit))
	}
	return out
}

// CheckCandidates checks that no recommendation was lost: every candidate
// event a scorer published (envs, recorded from the bus) was processed by
// the gatekeeper and left its row: the recommendation of its index, or the
// gatekeeper's rejection in mutation_log.
func CheckCandidates(ctx context.Context, q postgres.Querier, envs []events.Envelope) []string {
	var out []string
	seen := map[string]bool{}
	for _, env := range envs {
		if seen[env.ID] {
			continue
		}
		seen[env.ID] = true
		p, err := events.Decode(env)
		if err != nil {
			out = append(out, fmt.Sprintf("recommendation lost: candidate event %s does not decode: %v", env.ID, err))
			continue
		}
		c, ok := p.(*events.IndexCandidateScored)
		if !ok {
			continue
		}
		var processed, hasRow bool
		err = q.QueryRow(ctx, marker+`select
  exists(select 1 from indexpilot.processed_events where consumer = $1 and event_id = $2),
  exists(select 1 from indexpilot.recommendations where target = $3 and index_key = $4)
  or exists(select 1 from indexpilot.mutation_log_all where stage = 'gatekeeper' and candidate_id = $5)`,
			gatekeeper.Consumer, env.ID, c.Target, c.Index.Key(), c.CandidateID).Scan(&processed, &hasRow)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("recommendation lost: cannot check candidate event %s: %s", env.ID, postgres.Describe(err)))
		case !processed:
			out = append(out, fmt.Sprintf("recommendation lost: candidate event %s (%s, published %s) never processed by the gatekeeper",
				env.ID, c.Index.Key(), env.OccurredAt.Format("15:04:05.000")))
		case !hasRow:
			out = append(out, fmt.Sprintf("recommendation lost: candidate event %s (%s) processed without a row", env.ID, c.Index.Key()))
		}
	}
	return out
}
