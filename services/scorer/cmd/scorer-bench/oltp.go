package main

// The OLTP write-heavy workload (issue 11.7, the write half): three tables,
// UPDATEs of non-key columns (a balance and its timestamp, an order's state
// and shipping time) and INSERTs, next to lookups on other columns. It
// compares four index sets on what matters to a written database:
//
//   - none: no secondary index;
//   - chosen: the scorer's choice (formula v2, HOT-aware write model);
//   - singles: one single-column index per predicate column (what a naive
//     advisor proposes);
//   - v1: the scorer's choice without write charges (formula v1).
//
// Each is measured as every workload is (measure.go): the read cost with
// the statements' real constants, the WAL bytes per write transaction of a
// fixed-seed write script, the real index size and, for the scored sets,
// the selection time. It then checks that no chosen index on an updated
// column saves less in reads than its measured WAL costs, and that no
// other set dominates the chosen one on both axes.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"slices"
	"strings"
	"time"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/services/scorer"
)

const (
	oltpAccounts  = 100_000
	oltpCustomers = 40_000
	oltpOrders    = 200_000
	oltpLedger    = 100_000
)

// oltpUpdated is the columns the write mix updates, per table.
var oltpUpdated = map[string][]string{"accounts": {"balance", "updated_at"}, "orders": {"state", "shipped_at"}}

func oltpLoad(ctx context.Context, b *bench) error {
	return b.exec(ctx,
		fmt.Sprintf(`create table accounts (id int primary key, customer_id int not null, region int not null, status int not null,
			balance bigint not null, updated_at timestamptz not null, note text) with (fillfactor = 90)`),
		fmt.Sprintf(`insert into accounts select g, 1 + (g * 7) %% %d, g %% 20, g %% 5, 1000,
			timestamptz '2026-01-01' + g * interval '1 second', md5(g::text) from generate_series(1, %d) g`, oltpCustomers, oltpAccounts),
		`create table orders (id int primary key, account_id int not null, state int not null, total int not null,
			created_at timestamptz not null, shipped_at timestamptz) with (fillfactor = 90)`,
		fmt.Sprintf(`insert into orders select g, 1 + (g * 13) %% %d, g %% 6, g %% 1000, timestamptz '2026-01-01' + g * interval '1 minute',
			case when g %% 10 = 0 then null else timestamptz '2026-02-01' end from generate_series(1, %d) g`, oltpAccounts, oltpOrders),
		`create table ledger (id bigserial primary key, account_id int not null, amount int not null, created_at timestamptz not null)`,
		fmt.Sprintf(`insert into ledger (account_id, amount, created_at) select 1 + (g * 17) %% %d, g %% 500,
			timestamptz '2026-01-01' + g * interval '10 seconds' from generate_series(1, %d) g`, oltpAccounts, oltpLedger),
	)
}

// oltpReads are the lookups, with their calls in the window.
func oltpReads() []stmt {
	account := func(r *rand.Rand) int { return 1 + r.Intn(oltpAccounts) }
	return []stmt{
		{"SELECT id, balance FROM accounts WHERE customer_id = $1", 2000, func(r *rand.Rand) []any { return []any{1 + r.Intn(oltpCustomers)} }},
		{"SELECT id, total FROM orders WHERE account_id = $1 AND shipped_at IS NULL", 2000, func(r *rand.Rand) []any { return []any{account(r)} }},
		{"SELECT count(*) FROM orders WHERE state = $1 AND shipped_at IS NULL", 100, func(r *rand.Rand) []any { return []any{r.Intn(6)} }},
		{"SELECT id FROM accounts WHERE region = $1 AND status = $2", 300, func(r *rand.Rand) []any { return []any{r.Intn(20), r.Intn(5)} }},
		{"SELECT amount, created_at FROM ledger WHERE account_id = $1 ORDER BY created_at DESC LIMIT $2", 1000,
			func(r *rand.Rand) []any { return []any{account(r), 10} }},
		{"SELECT id FROM accounts WHERE updated_at > $1", 10,
			func(r *rand.Rand) []any { return []any{time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)} }},
	}
}

// oltpWrites are the write transactions (one statement each), with their
// calls in the window. The orders UPDATE sets values that differ from the
// previous script run's (scriptRun).
func oltpWrites() []writeTxn {
	account := func(r *rand.Rand) int { return 1 + r.Intn(oltpAccounts) }
	return []writeTxn{
		single("UPDATE accounts SET balance = balance + $1, updated_at = now() WHERE id = $2", 20000,
			func(r *rand.Rand) []any { return []any{r.Intn(100) - 50, account(r)} }),
		single("UPDATE orders SET state = $1, shipped_at = $2 WHERE id = $3", 20000, func(r *rand.Rand) []any {
			var shipped *time.Time
			if r.Intn(10) > 0 {
				t := time.Date(2026, 3, 1, 0, 0, scriptRun, 0, time.UTC)
				shipped = &t
			}
			return []any{(r.Intn(6) + scriptRun) % 6, shipped, 1 + r.Intn(oltpOrders)}
		}),
		single("INSERT INTO ledger (account_id, amount, created_at) VALUES ($1, $2, now())", 10000,
			func(r *rand.Rand) []any { return []any{account(r), r.Intn(500)} }),
	}
}

// oltpWorkload is the write-heavy OLTP workload; its compare adds the
// single-column and v1 sets and runs the checks.
func oltpWorkload() workload {
	return workload{name: "oltp", load: oltpLoad, reads: oltpReads(), writes: oltpWrites(), window: time.Hour, others: oltpOthers, check: oltpCheck}
}

// oltpSingles is one single-column index per predicate column of the reads.
func oltpSingles() []events.IndexSpec {
	on := func(table, col string) events.IndexSpec {
		return events.IndexSpec{Schema: "public", Table: table, Method: "btree", Columns: []string{col}}
	}
	return []events.IndexSpec{
		on("accounts", "customer_id"), on("accounts", "region"), on("accounts", "status"), on("accounts", "updated_at"),
		on("orders", "account_id"), on("orders", "state"), on("orders", "shipped_at"),
		on("ledger", "account_id"), on("ledger", "created_at"),
	}
}

// oltpOthers are the single-column set and the set the scorer chooses
// without write charges (v1).
func oltpOthers(ctx context.Context, run *benchRun) ([]*indexSet, error) {
	run.chosen.name = "chosen (v2)"
	v1, err := run.s.Score(ctx, "bench", scorer.Options{FormulaVersion: "v1"})
	if err != nil {
		return nil, err
	}
	return []*indexSet{{name: "single column per predicate", specs: oltpSingles()}, scoredSet("no write charge (v1)", v1)}, nil
}

// oltpCheck lists the scorer's Pareto view and checks the chosen set
// against the measurements; it returns an error when a check fails.
func oltpCheck(ctx context.Context, run *benchRun, w io.Writer) error {
	b, rep, chosen := run.b, run.rep, run.chosen
	printParetoView(w, rep)

	// Check 1: a chosen index on an updated column must save more in
	// reads than the WAL it was measured to add costs.
	var failed []string
	txns := float64(writeCalls(run.w.writes))
	for _, c := range rep.Chosen {
		col := updatedColumn(c.Index)
		if col == "" {
			continue
		}
		without := &indexSet{name: "chosen without " + label(c.Index), specs: slices.DeleteFunc(slices.Clone(chosen.specs),
			func(sp events.IndexSpec) bool { return sp.Key() == c.Index.Key() })}
		if err := b.measureSet(ctx, run.w, without); err != nil {
			return err
		}
		walCost := (chosen.walPerTxn - without.walPerTxn) * txns * scorer.WALCostPerByte
		ok := c.BenefitCost > walCost
		fmt.Fprintf(w, "check: %s contains updated column %s: read saving %.0f vs measured WAL cost %.0f (%.1f B/write txn) — %s\n",
			label(c.Index), col, c.BenefitCost, walCost, chosen.walPerTxn-without.walPerTxn, passFail(ok))
		if !ok {
			failed = append(failed, label(c.Index)+" costs more WAL than it saves")
		}
	}
	if !slices.ContainsFunc(rep.Chosen, func(c *events.IndexCandidateScored) bool { return updatedColumn(c.Index) != "" }) {
		fmt.Fprintln(w, "check: no chosen index contains an updated column — pass")
	}
	// Check 2: Pareto-optimal — no other set is better on one axis and
	// no worse on the other (2 % tolerance for measurement noise).
	for _, other := range run.others {
		dominated := dominates(other, chosen)
		fmt.Fprintf(w, "check: %q does not dominate the chosen set (read %.0f vs %.0f, WAL %.1f vs %.1f B/write txn) — %s\n",
			other.name, other.readCost, chosen.readCost, other.walPerTxn, chosen.walPerTxn, passFail(!dominated))
		if dominated {
			failed = append(failed, other.name+" dominates the chosen set")
		}
	}
	if len(failed) > 0 {
		return errors.New("oltp checks failed: " + strings.Join(failed, "; "))
	}
	return nil
}

func passFail(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}

// dominates reports whether a is better than b on one axis (read cost, WAL
// per write transaction) and no worse on the other, beyond 2 %.
func dominates(a, b *indexSet) bool {
	const tol = 0.02
	better := func(x, y float64) bool { return x < y*(1-tol) }
	noWorse := func(x, y float64) bool { return x <= y*(1+tol) }
	return (better(a.readCost, b.readCost) && noWorse(a.walPerTxn, b.walPerTxn)) ||
		(better(a.walPerTxn, b.walPerTxn) && noWorse(a.readCost, b.readCost))
}

// updatedColumn is the first column of spec (key, expression or
// predicate) that the write mix updates, or "".
func updatedColumn(spec events.IndexSpec) string {
	cols := append([]string(nil), spec.Columns...)
	for _, x := range spec.Expressions {
		cols = append(cols, x.Column)
	}
	if c, ok := indexdef.ParseCondition(spec.Predicate); ok {
		cols = append(cols, c.Column)
	}
	for _, c := range cols {
		if slices.Contains(oltpUpdated[spec.Table], c) {
			return c
		}
	}
	return ""
}
