package scorer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
)

// Retained is workload read back from the bus (`indexpilot replay --since
// <offset>`) instead of the statistics stored in the control database.
// Options.Retained scores exactly these events: the window is the span of
// their windows, not scorer.window.
type Retained struct {
	QueryStats []*events.QueryStatObserved
	TableStats []*events.TableStatObserved
}

// retainedWorkload aggregates r's statement deltas of target like
// loadWorkload does the stored ones: one delta per natural key (target,
// query id, window end), the latest text, calls and time summed, at least
// scorer.min_calls, in query-id order. The window runs from the earliest
// delta's start (or opts.Since) to the latest end at or before opts.Until.
func (s *Scorer) retainedWorkload(target string, r *Retained, opts Options) ([]*statement, time.Time, time.Time) {
	type key struct {
		id  string
		end time.Time
	}
	seen := map[key]*events.QueryStatObserved{}
	var start, end time.Time
	for _, q := range r.QueryStats {
		if q == nil || q.Target != target || (!opts.Until.IsZero() && q.WindowEnd.After(opts.Until)) ||
			(!opts.Since.IsZero() && !q.WindowEnd.After(opts.Since)) {
			continue
		}
		seen[key{q.QueryID, q.WindowEnd.UTC()}] = q
	}
	// A history window replaces what it covers, as HandleQueryStat does.
	for k, q := range seen {
		for _, h := range seen {
			if covers(h, q) {
				delete(seen, k)
				break
			}
		}
	}
	for _, q := range seen {
		// An unknown history start (= its end) does not stretch the window.
		if start.IsZero() || q.WindowStart.Before(start) {
			start = q.WindowStart
		}
		if q.WindowEnd.After(end) {
			end = q.WindowEnd
		}
	}
	if len(seen) == 0 {
		return nil, time.Time{}, time.Time{}
	}
	if !opts.Since.IsZero() {
		start = opts.Since
	}
	// As loadWorkload: running samples count only for a statement
	// pg_stat_statements has nothing of, and its text comes first.
	finished := map[string]bool{}
	for k, q := range seen {
		if q.WindowSource != events.WindowActivity {
			finished[k.id] = true
		}
	}
	byID := map[string]*statement{}
	latest := map[string]time.Time{}
	for k, q := range seen {
		st := byID[k.id]
		if st == nil {
			st = &statement{QueryID: k.id}
			byID[k.id] = st
		}
		activity := q.WindowSource == events.WindowActivity
		if !activity || !finished[k.id] {
			st.Calls += q.Calls
			st.TotalMs += q.TotalExecTimeMs
			st.Rows += q.Rows
		}
		if (!activity || !finished[k.id]) && (k.end.After(latest[k.id]) || st.Query == "") {
			st.Query, latest[k.id] = q.Query, k.end
		}
		if events.IsHistory(q.WindowSource) && k.end.After(st.HistoryEnd) {
			st.HistorySource, st.HistoryStart, st.HistoryEnd = q.WindowSource, q.WindowStart.UTC(), k.end
		}
		st.Unfinished = st.Unfinished || q.Unfinished
	}
	// Parameter samples newest first, as loadWorkload reads them.
	keys := make([]key, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].end.After(keys[j].end) })
	for _, k := range keys {
		byID[k.id].addParamSamples(seen[k].ParamSamples)
	}
	out := make([]*statement, 0, len(byID))
	for _, st := range byID {
		if st.Calls >= s.deps.Config.Scorer.MinCalls {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].QueryID < out[j].QueryID })
	return out, start.UTC(), end.UTC()
}

// covers reports whether history window h replaces window q of the same
// statement (see HandleQueryStat): h ends after q and starts at or before
// it (or at an unknown time); activity samples are never covered.
func covers(h, q *events.QueryStatObserved) bool {
	return h != q && h.QueryID == q.QueryID && events.IsHistory(h.WindowSource) && q.WindowSource != events.WindowActivity &&
		h.WindowEnd.After(q.WindowEnd) && (h.WindowSource == events.WindowHistoryUnknown || !h.WindowStart.After(q.WindowStart))
}

// maxParamSamples caps the parameter samples a statement carries.
const maxParamSamples = 32

// addParamSamples appends samples to st's, up to maxParamSamples.
func (st *statement) addParamSamples(samples [][]string) {
	for _, v := range samples {
		if len(st.ParamSamples) >= maxParamSamples {
			return
		}
		st.ParamSamples = append(st.ParamSamples, v)
	}
}

// window names st's workload window for the evidence ("" for deltas only).
func (st *statement) window() string {
	switch {
	case st.HistorySource != "":
		return events.DescribeWindow(st.HistorySource, st.HistoryStart, st.HistoryEnd)
	case st.Unfinished:
		return events.DescribeWindow(events.WindowActivity, time.Time{}, time.Time{})
	case st.averaged:
		return fmt.Sprintf("%s peak, not in the window: its history since %s averaged to the window",
			st.forecast.Peak.Name(), st.forecast.HistoryStart.Format("2006-01-02"))
	}
	return ""
}

// retainedWrites is writes over r's table statistics: the write counters
// of schema.table observed between from and to, one sample per
// observation time.
func retainedWrites(r *Retained, target, schema, table string, from, to time.Time) tableWrites {
	samples := map[time.Time]writeCounters{}
	for _, ts := range r.TableStats {
		if ts == nil || ts.Target != target || ts.Schema != schema || ts.Table != table ||
			!ts.ObservedAt.After(from) || ts.ObservedAt.After(to) {
			continue
		}
		newPage := notCounted
		if ts.NewPageUpdates != nil {
			newPage = float64(*ts.NewPageUpdates)
		}
		samples[ts.ObservedAt.UTC()] = writeCounters{float64(ts.Inserts), float64(ts.Updates), float64(ts.HotUpdates), float64(ts.Deletes), newPage}
	}
	at := make([]time.Time, 0, len(samples))
	for t := range samples {
		at = append(at, t)
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	values := make([]writeCounters, len(at))
	for i, t := range at {
		values[i] = samples[t]
	}
	return countersIncrease(values, at)
}

// writeCounters is one observation of a table's cumulative write
// counters: inserts, updates, HOT updates, deletes and updates to a new
// page, the last notCounted where the server does not count it (before
// PostgreSQL 16, and in samples stored before the scorer kept it).
type writeCounters [5]float64

// notCounted marks a counter the observation does not have (counters are
// never negative).
const notCounted = -1.0

// countersIncrease is counterIncrease of each counter of values (observed
// at the times at, in order), the span they were observed over, and the
// share of updates that found room on their page when every sample counts
// updates to a new page.
func countersIncrease(values []writeCounters, at []time.Time) tableWrites {
	var out writeCounters
	for k := range out {
		col := make([]float64, len(values))
		for i, v := range values {
			col[i] = v[k]
		}
		out[k] = counterIncrease(col)
	}
	tw := tableWrites{inserts: out[0], updates: out[1], hotUpdates: out[2], deletes: out[3]}
	if len(at) > 1 {
		tw.span = at[len(at)-1].Sub(at[0])
	}
	if len(values) == 0 || slices.ContainsFunc(values, func(v writeCounters) bool { return v[4] == notCounted }) {
		return tw
	}
	// The share of updates that found room on their page: over the
	// window, or since the reset when the window counted none.
	updates, newPage := out[1], out[4]
	if updates == 0 {
		last := values[len(values)-1]
		updates, newPage = last[1], last[4]
	}
	if updates > 0 {
		tw.room, tw.roomKnown = 1-min(newPage, updates)/updates, true
	}
	return tw
}

// counterIncrease sums the increases of a cumulative counter over its
// samples in time order; a value below the previous one means the counter
// was reset and counts from 0.
func counterIncrease(values []float64) float64 {
	var total float64
	for i := 1; i < len(values); i++ {
		if values[i] >= values[i-1] {
			total += values[i] - values[i-1]
		} else {
			total += values[i]
		}
	}
	return total
}

// Offsets says where ReadRetained starts in the statistics topics.
type Offsets struct {
	// Partition is the only partition read; -1 reads every partition.
	Partition int32
	// From is the first offset read in each partition read.
	From int64
}

// ParseOffsets reads replay's offset form of --since: "N" (every
// partition from offset N) or "P:N" (partition P only, from offset N).
// ok is false when s is not of that form (a time or a duration).
func ParseOffsets(s string) (o Offsets, ok bool, err error) {
	part, off, colon := strings.Cut(s, ":")
	if !colon {
		part, off = "", s
	}
	if !allDigits(off) || (colon && !allDigits(part)) {
		return Offsets{}, false, nil
	}
	o.Partition = -1
	if colon {
		p, err := strconv.ParseInt(part, 10, 32)
		if err != nil {
			return Offsets{}, true, fmt.Errorf("partition %q is out of range", part)
		}
		o.Partition = int32(p)
	}
	if o.From, err = strconv.ParseInt(off, 10, 64); err != nil {
		return Offsets{}, true, fmt.Errorf("offset %q is out of range", off)
	}
	return o, true, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// ReadRetained reads the query and table statistics events retained in
// Kafka from the given offsets up to each partition's end at the time of
// the call. It uses a plain partition consumer: it joins no consumer
// group and commits nothing, so the scorers' groups are not disturbed.
// An offset below the oldest one retained is an error.
func ReadRetained(ctx context.Context, cfg config.Kafka, from Offsets) (*Retained, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("read retained events: bus.kafka.brokers is empty")
	}
	scfg, err := bus.SaramaConfig(cfg, "indexpilot-replay")
	if err != nil {
		return nil, err
	}
	scfg.Consumer.Return.Errors = true
	client, err := sarama.NewClient(cfg.Brokers, scfg)
	if err != nil {
		return nil, fmt.Errorf("read retained events: connect to kafka: %w", err)
	}
	defer func() { _ = client.Close() }()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, fmt.Errorf("read retained events: %w", err)
	}
	defer func() { _ = consumer.Close() }()
	out := &Retained{}
	for _, t := range []events.Type{events.TypeQueryStatObserved, events.TypeTableStatObserved} {
		topic := events.Topic(t)
		parts, err := client.Partitions(topic)
		if err != nil {
			return nil, fmt.Errorf("read retained events: partitions of %s: %w", topic, err)
		}
		if from.Partition >= 0 {
			if !containsPartition(parts, from.Partition) {
				return nil, fmt.Errorf("read retained events: topic %s has no partition %d", topic, from.Partition)
			}
			parts = []int32{from.Partition}
		}
		for _, p := range parts {
			if err := readPartition(ctx, client, consumer, topic, p, from.From, out); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func containsPartition(parts []int32, p int32) bool {
	for _, x := range parts {
		if x == p {
			return true
		}
	}
	return false
}

// readPartition reads topic/p from offset up to the end it has now.
func readPartition(ctx context.Context, client sarama.Client, consumer sarama.Consumer, topic string, p int32, offset int64, out *Retained) error {
	oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return fmt.Errorf("read retained events: oldest offset of %s/%d: %w", topic, p, err)
	}
	end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return fmt.Errorf("read retained events: end offset of %s/%d: %w", topic, p, err)
	}
	if offset >= end {
		return nil
	}
	if offset < oldest {
		return fmt.Errorf("read retained events: offset %d of %s/%d is no longer retained (oldest is %d)", offset, topic, p, oldest)
	}
	pc, err := consumer.ConsumePartition(topic, p, offset)
	if err != nil {
		return fmt.Errorf("read retained events: consume %s/%d: %w", topic, p, err)
	}
	defer func() { _ = pc.Close() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case cerr := <-pc.Errors():
			return fmt.Errorf("read retained events: %s/%d: %w", topic, p, cerr.Err)
		case m := <-pc.Messages():
			if err := decodeRetained(m.Value, out); err != nil {
				return fmt.Errorf("read retained events: %s/%d offset %d: %w", topic, p, m.Offset, err)
			}
			if m.Offset+1 >= end {
				return nil
			}
		}
	}
}

// decodeRetained adds one message's event to out.
func decodeRetained(body []byte, out *Retained) error {
	env, err := events.Unmarshal(body)
	if err != nil {
		return err
	}
	p, err := events.Decode(env)
	if err != nil {
		return err
	}
	switch e := p.(type) {
	case *events.QueryStatObserved:
		out.QueryStats = append(out.QueryStats, e)
	case *events.TableStatObserved:
		out.TableStats = append(out.TableStats, e)
	}
	return nil
}
