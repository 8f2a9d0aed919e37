package scorer

import (
	"context"
	"errors"
	"fmt"
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
	byID := map[string]*statement{}
	latest := map[string]time.Time{}
	for k, q := range seen {
		st := byID[k.id]
		if st == nil {
			st = &statement{QueryID: k.id}
			byID[k.id] = st
		}
		st.Calls += q.Calls
		st.TotalMs += q.TotalExecTimeMs
		if k.end.After(latest[k.id]) || st.Query == "" {
			st.Query, latest[k.id] = q.Query, k.end
		}
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

// retainedWrites is writes over r's table statistics: the index-
// maintaining writes of schema.table observed between from and to, one
// sample per observation time.
func retainedWrites(r *Retained, target, schema, table string, from, to time.Time) float64 {
	samples := map[time.Time]float64{}
	for _, ts := range r.TableStats {
		if ts == nil || ts.Target != target || ts.Schema != schema || ts.Table != table ||
			!ts.ObservedAt.After(from) || ts.ObservedAt.After(to) {
			continue
		}
		samples[ts.ObservedAt.UTC()] = float64(ts.Inserts + ts.Updates - ts.HotUpdates)
	}
	at := make([]time.Time, 0, len(samples))
	for t := range samples {
		at = append(at, t)
	}
	sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
	values := make([]float64, len(at))
	for i, t := range at {
		values[i] = samples[t]
	}
	return counterIncrease(values)
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
