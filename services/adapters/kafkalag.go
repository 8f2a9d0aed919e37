package adapters

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
)

// GroupPrefix is the prefix of every IndexPilot consumer group
// (events.ConsumerGroup): the lag poller reports those groups only.
const GroupPrefix = "indexpilot."

// OffsetLag is how far one consumer group is behind on one partition: the
// partition's high-water mark (the offset the next message will get) minus
// the group's committed offset (the next one it will read). A partition
// where the group has committed nothing counts from the oldest offset kept,
// where the group will start (the bus's groups start from the oldest).
type OffsetLag struct {
	Group     string
	Topic     string
	Partition int32
	Messages  int64
}

// KafkaLag reads consumer-group offset lag from the brokers with the sarama
// client the bus uses.
type KafkaLag struct {
	client sarama.Client
	admin  sarama.ClusterAdmin
	prefix string
}

// NewKafkaLag connects to the brokers of cfg. Groups whose name starts with
// prefix are reported ("" means GroupPrefix).
func NewKafkaLag(cfg config.Kafka, prefix string) (*KafkaLag, error) {
	sc, err := bus.SaramaConfig(cfg, "indexpilot-adapters")
	if err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(cfg.Brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("kafka lag: connect: %w", err)
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("kafka lag: admin: %w", err)
	}
	if prefix == "" {
		prefix = GroupPrefix
	}
	return &KafkaLag{client: client, admin: admin, prefix: prefix}, nil
}

// Close releases the connections.
func (k *KafkaLag) Close() error { return k.admin.Close() }

// Read returns the lag of every partition of every topic each reported
// group has committed offsets on or is assigned, ordered by group, topic
// and partition.
func (k *KafkaLag) Read(ctx context.Context) ([]OffsetLag, error) {
	all, err := k.admin.ListConsumerGroups()
	if err != nil {
		return nil, fmt.Errorf("kafka lag: list groups: %w", err)
	}
	var groups []string
	for g := range all {
		if strings.HasPrefix(g, k.prefix) {
			groups = append(groups, g)
		}
	}
	sort.Strings(groups)
	if len(groups) == 0 {
		return nil, nil
	}
	// The topics a group consumes: those it committed on, plus those its
	// live members are assigned (a group that has committed nothing yet).
	topics := make(map[string]map[string]bool, len(groups))
	for _, g := range groups {
		topics[g] = map[string]bool{}
	}
	// Best effort: without the assignments, a group that has committed
	// nothing yet is missing from this poll only.
	if descs, err := k.admin.DescribeConsumerGroups(groups); err == nil {
		for _, d := range descs {
			for _, m := range d.Members {
				a, err := m.GetMemberAssignment()
				if err != nil || a == nil || topics[d.GroupId] == nil {
					continue
				}
				for t := range a.Topics {
					topics[d.GroupId][t] = true
				}
			}
		}
	}
	committed := make(map[string]map[string]map[int32]int64, len(groups))
	for _, g := range groups {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		resp, err := k.admin.ListConsumerGroupOffsets(g, nil)
		if err != nil {
			return nil, fmt.Errorf("kafka lag: offsets of group %s: %w", g, err)
		}
		committed[g] = map[string]map[int32]int64{}
		for t, parts := range resp.Blocks {
			topics[g][t] = true
			committed[g][t] = map[int32]int64{}
			for p, b := range parts {
				if b != nil && errors.Is(b.Err, sarama.ErrNoError) && b.Offset >= 0 {
					committed[g][t][p] = b.Offset
				}
			}
		}
	}

	// Offsets are read once per partition, whatever the number of groups.
	type tp struct {
		topic string
		part  int32
	}
	newest, oldest := map[tp]int64{}, map[tp]int64{}
	offset := func(m map[tp]int64, key tp, which int64) (int64, error) {
		if v, ok := m[key]; ok {
			return v, nil
		}
		v, err := k.client.GetOffset(key.topic, key.part, which)
		if err != nil {
			return 0, fmt.Errorf("kafka lag: offset of %s/%d: %w", key.topic, key.part, err)
		}
		m[key] = v
		return v, nil
	}
	var out []OffsetLag
	for _, g := range groups {
		names := make([]string, 0, len(topics[g]))
		for t := range topics[g] {
			names = append(names, t)
		}
		sort.Strings(names)
		for _, t := range names {
			parts, err := k.client.Partitions(t)
			if err != nil {
				return nil, fmt.Errorf("kafka lag: partitions of %s: %w", t, err)
			}
			for _, p := range parts {
				key := tp{t, p}
				hwm, err := offset(newest, key, sarama.OffsetNewest)
				if err != nil {
					return nil, err
				}
				from, ok := committed[g][t][p]
				if !ok {
					if from, err = offset(oldest, key, sarama.OffsetOldest); err != nil {
						return nil, err
					}
				}
				out = append(out, OffsetLag{Group: g, Topic: t, Partition: p, Messages: max(hwm-from, 0)})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Group != b.Group {
			return a.Group < b.Group
		}
		if a.Topic != b.Topic {
			return a.Topic < b.Topic
		}
		return a.Partition < b.Partition
	})
	return out, nil
}

// PollLag sets the consumer-lag gauge (MetricConsumerLag) on every sink
// from k every interval until ctx ends. A partition no longer reported is
// set to zero once. connect opens the reader (again, after an error), so
// that brokers unreachable at start only delay the gauge.
func PollLag(ctx context.Context, connect func() (*KafkaLag, error), interval time.Duration, sinks []Sink, onErr func(error)) {
	var k *KafkaLag
	defer func() {
		if k != nil {
			_ = k.Close()
		}
	}()
	last := map[[3]string]bool{}
	repeat(ctx, interval, func() {
		var err error
		if k == nil {
			k, err = connect()
		}
		var lags []OffsetLag
		if err == nil {
			if lags, err = k.Read(ctx); err != nil {
				_ = k.Close()
				k = nil
			}
		}
		if err != nil {
			if ctx.Err() == nil && onErr != nil {
				onErr(err)
			}
			return
		}
		now := map[[3]string]bool{}
		for _, l := range lags {
			key := [3]string{l.Group, l.Topic, strconv.Itoa(int(l.Partition))}
			now[key] = true
			for _, s := range sinks {
				s.Gauge(ctx, MetricConsumerLag, float64(l.Messages), lagTags(key))
			}
		}
		for key := range last {
			if !now[key] {
				for _, s := range sinks {
					s.Gauge(ctx, MetricConsumerLag, 0, lagTags(key))
				}
			}
		}
		last = now
	})
}

func lagTags(key [3]string) []Tag {
	return []Tag{{"group", key[0]}, {"topic", key[1]}, {"partition", key[2]}}
}
