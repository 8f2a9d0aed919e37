package whatif

import (
	"context"
	"testing"

	"github.com/indexpilot/indexpilot/events"
)

// BenchmarkCost measures one Cost call on the local PostgreSQL against the
// 20k-row items table (planning time does not depend on the row count).
//
//	go test -run '^$' -bench . -benchtime 2000x ./internal/whatif/
//
// Sub-benchmarks:
//   - cached: a repeated question, answered by the cache;
//   - empty-set: a miss with no hypothetical index (Parse, EXPLAIN, Close);
//   - same-set: a miss whose index set is already in place (no HypoPG call);
//   - greedy-diff: the greedy selection's pattern — two chosen indexes plus
//     one candidate that changes every call — with the default strategy
//     (drop the old candidate, create the new one);
//   - greedy-recreate: the same pattern, resetting HypoPG and recreating
//     the whole set on every change;
//   - greedy-diff-9, greedy-recreate-9: both with eight chosen indexes.
func BenchmarkCost(b *testing.B) {
	db := newItemsDB(b)
	ctx := context.Background()
	const q = "select id from public.items where a = $1 and b = $2 order by created_at"
	chosen := []events.IndexSpec{on("c"), on("note")}
	chosen8 := []events.IndexSpec{on("c"), on("note"), on("id", "c"), on("c", "id"),
		on("created_at", "id"), on("note", "id"), on("b", "c"), on("c", "b")}
	candidates := []events.IndexSpec{on("a"), on("b"), on("a", "b"), on("b", "a"), on("created_at")}
	withOn := func(base []events.IndexSpec) func(i int) []events.IndexSpec {
		return func(i int) []events.IndexSpec {
			return append(append([]events.IndexSpec{}, base...), candidates[i%len(candidates)])
		}
	}
	with := withOn(chosen)

	run := func(name string, recreate bool, set func(i int) []events.IndexSpec, miss bool) {
		b.Run(name, func(b *testing.B) {
			e := newEngine(b, db.Pool, Options{})
			s := acquire(b, e)
			s.recreate = recreate
			if _, err := s.Cost(ctx, q, set(0)); err != nil {
				b.Fatal(err)
			}
			start := s.Stats()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if miss {
					e.ResetCache()
				}
				if _, err := s.Cost(ctx, q, set(i+1)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(st.HypoCreates-start.HypoCreates)/float64(b.N), "creates/op")
			b.ReportMetric(float64(st.Evaluations-start.Evaluations)/float64(b.N), "explains/op")
		})
	}
	run("cached", false, func(int) []events.IndexSpec { return chosen }, false)
	run("empty-set", false, func(int) []events.IndexSpec { return nil }, true)
	run("same-set", false, func(int) []events.IndexSpec { return chosen }, true)
	run("greedy-diff", false, with, true)
	run("greedy-recreate", true, with, true)
	run("greedy-diff-9", false, withOn(chosen8), true)
	run("greedy-recreate-9", true, withOn(chosen8), true)
}

// BenchmarkSize measures an uncached Size: create the hypothetical index
// and ask HypoPG for its size.
func BenchmarkSize(b *testing.B) {
	db := newItemsDB(b)
	ctx := context.Background()
	e := newEngine(b, db.Pool, Options{})
	s := acquire(b, e)
	specs := []events.IndexSpec{on("a"), on("b"), on("a", "b"), on("created_at")}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e.ResetCache()
		if _, err := s.Size(ctx, specs[i%len(specs)]); err != nil {
			b.Fatal(err)
		}
	}
}
