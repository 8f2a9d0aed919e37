package scorer

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

func spanCtx(n int) trace.SpanContext {
	var tid trace.TraceID
	var sid trace.SpanID
	tid[0], sid[0] = 1, 1
	tid[15], sid[7] = byte(n), byte(n)
	tid[14], sid[6] = byte(n>>8), byte(n>>8)
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

func linkAttr(l trace.Link, key string) string {
	for _, kv := range l.Attributes {
		if kv.Key == attribute.Key(key) {
			return kv.Value.Emit()
		}
	}
	return ""
}

// TestEvidenceSpansAreBounded: the latest spansPerStatement events of a
// statement are kept, newest first in the links; a redelivered event is
// one entry; the oldest statement is forgotten past the cap; a candidate
// gets at most maxCandidateLinks links, the newest of every statement
// before the older ones; an event without trace context is not kept.
func TestEvidenceSpansAreBounded(t *testing.T) {
	e := newEvidenceSpans(3)
	for i := 1; i <= spansPerStatement+2; i++ {
		e.note("main", "q1", "ev"+strconv.Itoa(i), spanCtx(i))
	}
	e.note("main", "q1", "ev6", spanCtx(6)) // redelivery of the newest
	e.note("main", "q1", "invalid", trace.SpanContext{})
	links := e.links("main", []string{"q1"})
	require.Len(t, links, spansPerStatement)
	require.Equal(t, spanCtx(6), links[0].SpanContext)
	require.Equal(t, "ev6", linkAttr(links[0], "indexpilot.event.id"))
	require.Equal(t, "q1", linkAttr(links[0], "indexpilot.query_id"))
	require.Equal(t, spanCtx(3), links[spansPerStatement-1].SpanContext, "not the latest events")

	e.note("main", "q2", "a", spanCtx(20))
	e.note("other", "q1", "b", spanCtx(21))
	require.Len(t, e.links("other", []string{"q1"}), 1, "targets are apart")
	e.note("main", "q3", "c", spanCtx(22)) // a fourth statement: q1 of main goes
	require.Empty(t, e.links("main", []string{"q1"}))
	require.Len(t, e.links("main", []string{"q2", "q3"}), 2)

	big := newEvidenceSpans(1000)
	var ids []string
	for q := 0; q < 40; q++ {
		id := "s" + strconv.Itoa(q)
		ids = append(ids, id)
		for i := 0; i < spansPerStatement; i++ {
			big.note("main", id, id+"/"+strconv.Itoa(i), spanCtx(q*10+i+1))
		}
	}
	links = big.links("main", ids)
	require.Len(t, links, maxCandidateLinks)
	for q := 0; q < 40; q++ {
		require.Equal(t, spanCtx(q*10+spansPerStatement), links[q].SpanContext, "statement %d's newest event is not among the first links", q)
	}
}

// BenchmarkEvidenceSpansNote is the cost, per querystat event, of
// remembering its span (every event the scorer stores pays it), over a
// workload of 10 000 statements.
func BenchmarkEvidenceSpansNote(b *testing.B) {
	e := newEvidenceSpans(maxTracedStatements)
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	sc := spanCtx(1)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.note("main", ids[i%len(ids)], strconv.Itoa(i), sc)
	}
}

// BenchmarkEvidenceSpansLinks is the cost of a candidate's links on 20
// statements.
func BenchmarkEvidenceSpansLinks(b *testing.B) {
	e := newEvidenceSpans(maxTracedStatements)
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
		for j := 0; j < spansPerStatement; j++ {
			e.note("main", ids[i], ids[i]+"/"+strconv.Itoa(j), spanCtx(i*10+j+1))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = e.links("main", ids)
	}
}

// BenchmarkEvidenceSpansFull reports the heap the memory holds when full:
// maxTracedStatements statements with spansPerStatement events each.
func BenchmarkEvidenceSpansFull(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e := newEvidenceSpans(maxTracedStatements)
		for q := 0; q < maxTracedStatements; q++ {
			id := strconv.Itoa(-1_000_000_000_000 - q)
			for j := 0; j < spansPerStatement; j++ {
				e.note("main", id, "00000000-0000-5000-8000-"+strconv.Itoa(100_000_000_000+q*10+j), spanCtx(q+j+1))
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-held")
		runtime.KeepAlive(e)
	}
}
