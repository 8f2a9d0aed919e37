package main

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/scorer"
	"github.com/indexpilot/indexpilot/services/scorer/internal/whatif"
)

// The analytical workload: a decision-support schema shaped like TPC-H
// (scaled down) and 20 query templates with date and interval arithmetic,
// joins, GROUP BY and ORDER BY … LIMIT. Unlike the other workloads, its
// statements are not written in normalized form: every template runs with
// analyticalVariants sets of literal constants (fixed seed), and the
// scorer gets what pg_stat_statements made of them (`date $1 - interval
// $2 day`) and what pg_qualstats recorded. The read cost is then priced
// with the real constants: EXPLAIN of every literal statement that ran,
// with no secondary index and with the chosen set built.
const (
	analyticalCustomers = 6_000
	analyticalOrders    = 60_000
	analyticalParts     = 8_000
	analyticalSuppliers = 400
	analyticalVariants  = 3
)

var (
	tpchSegments   = []string{"AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"}
	tpchRegions    = []string{"AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"}
	tpchShipmodes  = []string{"AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK"}
	tpchContainers = []string{"SM CASE", "SM BOX", "MED BAG", "LG CASE", "JUMBO PKG", "WRAP BOX"}
)

// analyticalTemplate renders one literal statement from the RNG.
type analyticalTemplate func(r *rand.Rand) string

func day(r *rand.Rand, from, to string) string {
	a, _ := time.Parse(time.DateOnly, from)
	b, _ := time.Parse(time.DateOnly, to)
	return a.AddDate(0, 0, r.Intn(int(b.Sub(a).Hours()/24))).Format(time.DateOnly)
}

func pick(r *rand.Rand, xs []string) string { return xs[r.Intn(len(xs))] }

func analyticalTemplates() []analyticalTemplate {
	return []analyticalTemplate{
		// Q1 pricing summary.
		func(r *rand.Rand) string {
			return fmt.Sprintf(`select l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice * (1 - l_discount)), avg(l_discount), count(*)
  from lineitem where l_shipdate <= date '1998-12-01' - interval '%d' day group by l_returnflag, l_linestatus order by 1, 2`, 60+r.Intn(60))
		},
		// Q3 shipping priority.
		func(r *rand.Rand) string {
			d := day(r, "1995-03-01", "1995-03-31")
			return fmt.Sprintf(`select l_orderkey, sum(l_extendedprice * (1 - l_discount)) as revenue, o_orderdate
  from customer, orders, lineitem
 where c_mktsegment = '%s' and c_custkey = o_custkey and l_orderkey = o_orderkey
   and o_orderdate < date '%s' and l_shipdate > date '%s'
 group by l_orderkey, o_orderdate order by revenue desc, o_orderdate limit 10`, pick(r, tpchSegments), d, d)
		},
		// Q4 order priority checking.
		func(r *rand.Rand) string {
			d := day(r, "1993-01-01", "1997-10-01")
			return fmt.Sprintf(`select o_orderpriority, count(*) from orders
 where o_orderdate >= date '%s' and o_orderdate < date '%s' + interval '3' month
   and exists (select 1 from lineitem where l_orderkey = o_orderkey and l_commitdate < l_receiptdate)
 group by o_orderpriority order by o_orderpriority`, d, d)
		},
		// Q5 local supplier volume.
		func(r *rand.Rand) string {
			d := fmt.Sprintf("199%d-01-01", 3+r.Intn(5))
			return fmt.Sprintf(`select n_name, sum(l_extendedprice * (1 - l_discount)) as revenue
  from customer, orders, lineitem, supplier, nation, region
 where c_custkey = o_custkey and l_orderkey = o_orderkey and l_suppkey = s_suppkey and c_nationkey = s_nationkey
   and s_nationkey = n_nationkey and n_regionkey = r_regionkey and r_name = '%s'
   and o_orderdate >= date '%s' and o_orderdate < date '%s' + interval '1' year
 group by n_name order by revenue desc`, pick(r, tpchRegions), d, d)
		},
		// Q6 forecasting revenue change.
		func(r *rand.Rand) string {
			d := fmt.Sprintf("199%d-01-01", 3+r.Intn(5))
			disc := 0.02 + 0.01*float64(r.Intn(8))
			return fmt.Sprintf(`select sum(l_extendedprice * l_discount) as revenue from lineitem
 where l_shipdate >= date '%s' and l_shipdate < date '%s' + interval '1' year
   and l_discount between %.2f - 0.01 and %.2f + 0.01 and l_quantity < %d`, d, d, disc, disc, 24+r.Intn(2))
		},
		// Q7-like volume shipping by year.
		func(r *rand.Rand) string {
			return fmt.Sprintf(`select extract(year from l_shipdate) as l_year, sum(l_extendedprice * (1 - l_discount))
  from lineitem, supplier, nation
 where s_suppkey = l_suppkey and s_nationkey = n_nationkey and n_name = 'NATION%02d'
   and l_shipdate between date '1995-01-01' and date '1996-12-31'
 group by l_year order by l_year`, r.Intn(25))
		},
		// Q10 returned item reporting.
		func(r *rand.Rand) string {
			d := day(r, "1993-02-01", "1995-01-01")
			return fmt.Sprintf(`select c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) as revenue, c_acctbal
  from customer, orders, lineitem
 where c_custkey = o_custkey and l_orderkey = o_orderkey
   and o_orderdate >= date '%s' and o_orderdate < date '%s' + interval '3' month and l_returnflag = 'R'
 group by c_custkey, c_name, c_acctbal order by revenue desc limit 20`, d, d)
		},
		// Q12 shipping modes.
		func(r *rand.Rand) string {
			d := fmt.Sprintf("199%d-01-01", 3+r.Intn(5))
			return fmt.Sprintf(`select l_shipmode, sum(case when o_orderpriority = '1-URGENT' then 1 else 0 end) as high_line_count
  from orders, lineitem
 where o_orderkey = l_orderkey and l_shipmode in ('%s', '%s')
   and l_commitdate < l_receiptdate and l_shipdate < l_commitdate
   and l_receiptdate >= date '%s' and l_receiptdate < date '%s' + interval '1' year
 group by l_shipmode order by l_shipmode`, pick(r, tpchShipmodes), pick(r, tpchShipmodes), d, d)
		},
		// Q14 promotion effect.
		func(r *rand.Rand) string {
			d := fmt.Sprintf("199%d-%02d-01", 3+r.Intn(5), 1+r.Intn(12))
			return fmt.Sprintf(`select 100.00 * sum(case when p_type like 'PROMO%%' then l_extendedprice * (1 - l_discount) else 0 end)
       / sum(l_extendedprice * (1 - l_discount)) as promo_revenue
  from lineitem, part
 where l_partkey = p_partkey and l_shipdate >= date '%s' and l_shipdate < date '%s' + interval '1' month`, d, d)
		},
		// Q15-like top supplier of a quarter.
		func(r *rand.Rand) string {
			d := fmt.Sprintf("199%d-%02d-01", 3+r.Intn(5), 1+3*r.Intn(4))
			return fmt.Sprintf(`select l_suppkey, sum(l_extendedprice * (1 - l_discount)) as total_revenue from lineitem
 where l_shipdate >= date '%s' and l_shipdate < date '%s' + interval '3' month
 group by l_suppkey order by total_revenue desc limit 1`, d, d)
		},
		// Q17 small-quantity-order revenue (decorrelated).
		func(r *rand.Rand) string {
			return fmt.Sprintf(`select sum(l_extendedprice) / 7.0 as avg_yearly
  from lineitem, part, (select l_partkey as a_partkey, 0.2 * avg(l_quantity) as small from lineitem group by l_partkey) a
 where p_partkey = l_partkey and a_partkey = p_partkey and p_brand = 'Brand#%d%d' and p_container = '%s' and l_quantity < a.small`,
				1+r.Intn(5), 1+r.Intn(5), pick(r, tpchContainers))
		},
		// Q18 large volume customers.
		func(r *rand.Rand) string {
			return fmt.Sprintf(`select c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice, sum(l_quantity)
  from customer, orders, lineitem
 where o_orderkey in (select l_orderkey from lineitem group by l_orderkey having sum(l_quantity) > %d)
   and c_custkey = o_custkey and o_orderkey = l_orderkey
 group by c_name, c_custkey, o_orderkey, o_orderdate, o_totalprice order by o_totalprice desc, o_orderdate limit 100`, 180+r.Intn(20))
		},
		// Q19 discounted revenue.
		func(r *rand.Rand) string {
			q := 1 + r.Intn(10)
			return fmt.Sprintf(`select sum(l_extendedprice * (1 - l_discount)) as revenue from lineitem, part
 where p_partkey = l_partkey and p_brand = 'Brand#%d%d' and p_container in ('SM CASE', 'SM BOX')
   and l_quantity >= %d and l_quantity <= %d + 10 and p_size between 1 and 5 and l_shipmode in ('AIR', 'REG AIR')`, 1+r.Intn(5), 1+r.Intn(5), q, q)
		},
		// Q20-like potential part promotion (decorrelated).
		func(r *rand.Rand) string {
			d := fmt.Sprintf("199%d-01-01", 3+r.Intn(5))
			return fmt.Sprintf(`select distinct s_name from supplier, nation, partsupp, part,
       (select l_partkey, l_suppkey, 0.5 * sum(l_quantity) as half from lineitem
         where l_shipdate >= date '%s' and l_shipdate < date '%s' + interval '1' year group by l_partkey, l_suppkey) shipped
 where s_suppkey = ps_suppkey and ps_partkey = p_partkey and p_name like 'part%d%%'
   and shipped.l_partkey = ps_partkey and shipped.l_suppkey = ps_suppkey and ps_availqty > shipped.half
   and s_nationkey = n_nationkey and n_name = 'NATION%02d' order by s_name`, d, d, 1+r.Intn(9), r.Intn(25))
		},
		// Q22-like global sales opportunity.
		func(r *rand.Rand) string {
			return fmt.Sprintf(`select substring(c_phone from 1 for 2) as cntrycode, count(*), sum(c_acctbal) from customer
 where substring(c_phone from 1 for 2) in ('%d', '%d', '%d')
   and c_acctbal > (select avg(c_acctbal) from customer where c_acctbal > 0.00)
 group by cntrycode order by cntrycode`, 10+r.Intn(25), 10+r.Intn(25), 10+r.Intn(25))
		},
		// A customer's recent orders.
		func(r *rand.Rand) string {
			return fmt.Sprintf(`select o_orderkey, o_totalprice, o_orderdate from orders
 where o_custkey = %d and o_orderdate >= date '1998-08-01' - interval '%d' month order by o_orderdate desc limit 10`,
				1+r.Intn(analyticalCustomers), 6+r.Intn(12))
		},
		// Open orders of a month.
		func(r *rand.Rand) string {
			d := day(r, "1995-01-01", "1998-06-01")
			return fmt.Sprintf(`select count(*), sum(o_totalprice) from orders
 where o_orderdate between date '%s' and date '%s' + interval '30' day and o_orderstatus = 'O'`, d, d)
		},
		// Late receipts of one ship mode, oldest first.
		func(r *rand.Rand) string {
			return fmt.Sprintf(`select l_orderkey, l_linenumber, l_receiptdate from lineitem
 where l_receiptdate > timestamp '%s 00:00:00' and l_shipmode = '%s' order by l_receiptdate limit 50`,
				day(r, "1998-06-01", "1998-12-01"), pick(r, tpchShipmodes))
		},
		// Monthly revenue over the last years.
		func(r *rand.Rand) string {
			return fmt.Sprintf(`select date_trunc('month', o_orderdate) as month, sum(o_totalprice) from orders
 where o_orderdate >= date '1998-08-02' - interval '%d' year group by month order by month`, 1+r.Intn(2))
		},
		// The line items of one part from one supplier.
		func(r *rand.Rand) string {
			return fmt.Sprintf(`select l_orderkey, l_quantity, l_shipdate from lineitem where l_partkey = %d and l_suppkey = %d`,
				1+r.Intn(analyticalParts), 1+r.Intn(analyticalSuppliers))
		},
	}
}

func loadAnalytical(ctx context.Context, b *bench) error {
	return b.exec(ctx,
		`create table region (r_regionkey int primary key, r_name text not null)`,
		`create table nation (n_nationkey int primary key, n_name text not null, n_regionkey int not null)`,
		`create table supplier (s_suppkey int primary key, s_name text not null, s_nationkey int not null, s_acctbal numeric not null)`,
		`create table customer (c_custkey int primary key, c_name text not null, c_nationkey int not null,
			c_mktsegment text not null, c_acctbal numeric not null, c_phone text not null)`,
		`create table part (p_partkey int primary key, p_name text not null, p_brand text not null, p_type text not null,
			p_size int not null, p_container text not null, p_retailprice numeric not null)`,
		`create table partsupp (ps_partkey int not null, ps_suppkey int not null, ps_availqty int not null,
			ps_supplycost numeric not null, primary key (ps_partkey, ps_suppkey))`,
		`create table orders (o_orderkey int primary key, o_custkey int not null, o_orderstatus text not null,
			o_totalprice numeric not null, o_orderdate date not null, o_orderpriority text not null, o_clerk text not null)`,
		`create table lineitem (l_orderkey int not null, l_linenumber int not null, l_partkey int not null, l_suppkey int not null,
			l_quantity numeric not null, l_extendedprice numeric not null, l_discount numeric not null, l_tax numeric not null,
			l_returnflag text not null, l_linestatus text not null, l_shipdate date not null, l_commitdate date not null,
			l_receiptdate date not null, l_shipmode text not null, primary key (l_orderkey, l_linenumber))`,
		`insert into region select g, (array['AFRICA','AMERICA','ASIA','EUROPE','MIDDLE EAST'])[g + 1] from generate_series(0, 4) g`,
		`insert into nation select g, 'NATION' || lpad(g::text, 2, '0'), g % 5 from generate_series(0, 24) g`,
		fmt.Sprintf(`insert into supplier select g, 'Supplier#' || g, g %% 25, (g * 37 %% 11000) - 1000 from generate_series(1, %d) g`, analyticalSuppliers),
		fmt.Sprintf(`insert into customer select g, 'Customer#' || g, g %% 25,
			(array['AUTOMOBILE','BUILDING','FURNITURE','HOUSEHOLD','MACHINERY'])[1 + g %% 5], (g * 7919 %% 11000) - 1000,
			(10 + g %% 25)::text || '-' || lpad((g * 13 %% 1000)::text, 3, '0') from generate_series(1, %d) g`, analyticalCustomers),
		fmt.Sprintf(`insert into part select g, 'part' || g, 'Brand#' || (1 + g %% 5) || (1 + g / 5 %% 5),
			(array['PROMO BRUSHED','STANDARD POLISHED','ECONOMY ANODIZED','LARGE PLATED','MEDIUM BURNISHED'])[1 + g %% 5] || ' STEEL',
			1 + g %% 50, (array['SM CASE','SM BOX','MED BAG','LG CASE','JUMBO PKG','WRAP BOX'])[1 + g %% 6], 900 + g %% 1000
			from generate_series(1, %d) g`, analyticalParts),
		fmt.Sprintf(`insert into partsupp select p, 1 + (p + k * 101) %% %d, 1 + (p * k * 31) %% 9999, 1 + (p * k) %% 1000
			from generate_series(1, %d) p, generate_series(0, 3) k`, analyticalSuppliers, analyticalParts),
		// Dates 1992..1998; most orders are finished ('F'), the last months are open ('O').
		fmt.Sprintf(`insert into orders select g, 1 + (g * 7919) %% %d, case when g > %d * 0.95 then 'O' else 'F' end,
			1000 + (g * 31 %% 400000), date '1992-01-01' + (g * 2400 / %d), (array['1-URGENT','2-HIGH','3-MEDIUM','4-NOT SPECIFIED','5-LOW'])[1 + g %% 5],
			'Clerk#' || (g %% 1000) from generate_series(1, %d) g`, analyticalCustomers, analyticalOrders, analyticalOrders, analyticalOrders),
		fmt.Sprintf(`insert into lineitem select o_orderkey, n, 1 + (o_orderkey * 13 + n * 7) %% %d, 1 + (o_orderkey + n * 101) %% %d,
			1 + (o_orderkey * n) %% 50, 1000 + (o_orderkey * n) %% 100000, ((o_orderkey + n) %% 11) / 100.0, ((o_orderkey * n) %% 9) / 100.0,
			case when o_orderdate < date '1995-06-17' then (array['R','A','N'])[1 + (o_orderkey + n) %% 3] else 'N' end,
			case when o_orderstatus = 'O' then 'O' else 'F' end,
			o_orderdate + 1 + (o_orderkey * n) %% 120, o_orderdate + 30 + (o_orderkey + n) %% 60, o_orderdate + 2 + (o_orderkey * n) %% 150,
			(array['AIR','FOB','MAIL','RAIL','REG AIR','SHIP','TRUCK'])[1 + (o_orderkey + n) %% 7]
			from orders, generate_series(1, 1 + o_orderkey %% 7) n`, analyticalParts, analyticalSuppliers),
	)
}

// analyticalResult is the analytical workload's row.
type analyticalResult struct {
	templates, executions, statements int
	notEvaluable, unparsed            int
	pricing                           map[string]int
	valuePlans, whatIfCalls           int
	selection                         time.Duration
	// realBefore and realAfter are Σ plan cost of every executed literal
	// statement with no secondary index and with the chosen set built.
	realBefore, realAfter float64
	// realGeneric is the same with the set the scorer chooses when it
	// prices every statement by its generic plan.
	realGeneric float64
	// scorerBefore and scorerAfter are the scorer's own workload costs.
	scorerBefore, scorerAfter float64
	indexBytes                int64
	chosen, chosenGeneric     []string
}

func runAnalytical(ctx context.Context, admin string, budgetMB int64, verbose bool) (res analyticalResult, err error) {
	b, drop, err := openBench(ctx, admin, fmt.Sprintf("ipscorerbench_analytical_%d", os.Getpid()), "hypopg", "pg_stat_statements", "pg_qualstats")
	if err != nil {
		return res, err
	}
	defer func() {
		if derr := drop(); err == nil && derr != nil {
			err = derr
		}
	}()
	fmt.Fprintln(os.Stderr, "[analytical] loading data")
	if err := loadAnalytical(ctx, b); err != nil {
		return res, fmt.Errorf("load: %w", err)
	}
	if err := b.exec(ctx, "vacuum analyze"); err != nil {
		return res, err
	}

	// Run every template with its literal constants: pg_stat_statements
	// normalizes them, pg_qualstats records the constants.
	templates := analyticalTemplates()
	r := rand.New(rand.NewSource(11))
	var literals []string
	for _, tpl := range templates {
		for v := 0; v < analyticalVariants; v++ {
			literals = append(literals, tpl(r))
		}
	}
	res.templates, res.executions = len(templates), len(literals)
	fmt.Fprintf(os.Stderr, "[analytical] running %d statements\n", len(literals))
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return res, err
	}
	if _, err := conn.Exec(ctx, marker+"select pg_stat_statements_reset(0, (select oid from pg_database where datname = current_database()), 0)"); err != nil {
		conn.Release()
		return res, err
	}
	if _, err := conn.Exec(ctx, marker+"set pg_qualstats.sample_rate = 1"); err != nil {
		conn.Release()
		return res, err
	}
	for _, sql := range literals {
		// The simple protocol, as a reporting tool would send them.
		if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			conn.Release()
			return res, fmt.Errorf("run %.60q: %w", sql, err)
		}
	}
	conn.Release()

	s, closeScorer, err := b.newScorer(0, budgetMB, verbose)
	if err != nil {
		return res, err
	}
	defer closeScorer()
	rows, err := b.pool.Query(ctx, marker+`select queryid::text, query, calls, rows, total_exec_time from pg_stat_statements
 where dbid = (select oid from pg_database where datname = current_database()) and toplevel
   and query !~* '^\s*/\*' and query ~* '^\s*select' and query !~ 'pg_stat_statements|pg_qualstats|pg_catalog'`)
	if err != nil {
		return res, err
	}
	end := time.Now().UTC().Truncate(time.Second)
	var stats []*events.QueryStatObserved
	for rows.Next() {
		q := &events.QueryStatObserved{Target: "bench", WindowStart: end.Add(-time.Hour), WindowEnd: end}
		if err := rows.Scan(&q.QueryID, &q.Query, &q.Calls, &q.Rows, &q.TotalExecTimeMs); err != nil {
			rows.Close()
			return res, err
		}
		q.MeanExecTimeMs = q.TotalExecTimeMs / float64(q.Calls)
		stats = append(stats, q)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, err
	}
	res.statements = len(stats)
	for _, q := range stats {
		env, err := events.Wrap(q, "bench", "", end)
		if err != nil {
			return res, err
		}
		if _, err := s.HandleQueryStat(ctx, env, q); err != nil {
			return res, err
		}
	}
	fmt.Fprintf(os.Stderr, "[analytical] scoring %d statements\n", len(stats))
	rep, err := s.Score(ctx, "bench", scorer.Options{})
	if err != nil {
		return res, err
	}
	res.notEvaluable, res.unparsed, res.pricing = rep.NotEvaluable, rep.Unparsed, rep.Pricing
	if verbose {
		if err := explainNotEvaluable(ctx, b, stats); err != nil {
			return res, err
		}
	}
	res.valuePlans, res.whatIfCalls, res.selection = rep.ValuePlans, rep.WhatIfCalls, rep.Duration
	res.scorerBefore, res.scorerAfter = rep.WorkloadCostBefore, rep.WorkloadCostAfter

	if res.realBefore, err = b.literalCost(ctx, literals); err != nil {
		return res, err
	}
	generic, err := s.Score(ctx, "bench", scorer.Options{GenericPlans: true})
	if err != nil {
		return res, err
	}
	if res.realAfter, res.indexBytes, res.chosen, err = b.withIndexes(ctx, rep.Chosen, literals); err != nil {
		return res, err
	}
	if res.realGeneric, _, res.chosenGeneric, err = b.withIndexes(ctx, generic.Chosen, literals); err != nil {
		return res, err
	}
	return res, nil
}

// withIndexes builds chosen, prices the literal statements, and drops the
// indexes again.
func (b *bench) withIndexes(ctx context.Context, chosen []*events.IndexCandidateScored, literals []string) (cost float64, bytes int64, labels []string, err error) {
	if bytes, err = b.build(ctx, chosen); err != nil {
		return 0, 0, nil, err
	}
	for _, c := range chosen {
		labels = append(labels, c.Index.Table+"("+strings.Join(c.Index.Columns, ",")+")")
	}
	sort.Strings(labels)
	if err := b.exec(ctx, "analyze"); err != nil {
		return 0, 0, nil, err
	}
	if cost, err = b.literalCost(ctx, literals); err != nil {
		return 0, 0, nil, err
	}
	for _, c := range chosen {
		if err := b.exec(ctx, "drop index "+postgres.Ident(c.Index.Schema, indexdef.Name(c.Index))); err != nil {
			return 0, 0, nil, err
		}
	}
	return cost, bytes, labels, nil
}

// literalCost is Σ plan cost of the literal statements: each is planned
// with its own constants (EXPLAIN, not run).
func (b *bench) literalCost(ctx context.Context, literals []string) (float64, error) {
	var sum float64
	for _, sql := range literals {
		// The simple protocol: the constants are in the text.
		cost, err := b.explainCost(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return 0, err
		}
		sum += cost
	}
	return sum, nil
}

func printAnalytical(w io.Writer, r analyticalResult) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "workload\ttemplates\truns\tstatements\tnot evaluable\tpriced by\treal-constant cost: no secondary indexes\tchosen set\tratio\tgeneric-plan set\tratio\tscorer's own ratio\tindex bytes\tselection\twhat-if calls\tvalue-set plans")
	var methods []string
	for m, n := range r.pricing {
		methods = append(methods, fmt.Sprintf("%s %d", m, n))
	}
	sort.Strings(methods)
	ratio := func(a, b float64) float64 {
		if b <= 0 {
			return 0
		}
		return a / b
	}
	fmt.Fprintf(tw, "analytical\t%d\t%d\t%d\t%d (%.0f %%)\t%s\t%.0f\t%.0f\t%.3f\t%.0f\t%.3f\t%.3f\t%d\t%s\t%d\t%d\n",
		r.templates, r.executions, r.statements, r.notEvaluable, 100*float64(r.notEvaluable)/float64(max(r.statements, 1)),
		strings.Join(methods, ", "), r.realBefore, r.realAfter, ratio(r.realAfter, r.realBefore),
		r.realGeneric, ratio(r.realGeneric, r.realBefore), ratio(r.scorerAfter, r.scorerBefore), r.indexBytes,
		r.selection.Round(time.Millisecond), r.whatIfCalls, r.valuePlans)
	_ = tw.Flush()
	fmt.Fprintf(w, "chosen (real values): %s\nchosen (generic plans): %s\n", strings.Join(r.chosen, " "), strings.Join(r.chosenGeneric, " "))
}

// explainNotEvaluable prints, for --verbose, why each statement the
// planner cannot price fails.
func explainNotEvaluable(ctx context.Context, b *bench, stats []*events.QueryStatObserved) error {
	e, err := whatif.New(b.pool, whatif.Options{})
	if err != nil {
		return err
	}
	sess, err := e.Acquire(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	in := make([]whatif.Statement, len(stats))
	for i, q := range stats {
		in[i] = whatif.Statement{QueryID: q.QueryID, Query: q.Query}
	}
	ps, err := sess.Price(ctx, in)
	if err != nil {
		return err
	}
	for i, q := range stats {
		if _, err := sess.Cost(ctx, q.Query, nil); err != nil {
			fmt.Fprintf(os.Stderr, "[analytical] not evaluable (%s): %v\n  %s\n", ps[i].Method, err, strings.Join(strings.Fields(q.Query), " "))
		}
	}
	return nil
}
