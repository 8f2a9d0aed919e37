package integration

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
)

// TestKafkaKeysByTarget checks the wire through watermill-kafka's
// marshaler: every message carries the target name as its Kafka key, so
// one target's events land on one partition in publish order, whether
// they are published one by one or as one batch.
func TestKafkaKeysByTarget(t *testing.T) {
	t.Run("one by one", func(t *testing.T) { testKafkaKeysByTarget(t, false) })
	t.Run("one batch", func(t *testing.T) { testKafkaKeysByTarget(t, true) })
}

func testKafkaKeysByTarget(t *testing.T, batch bool) {
	brokers := newKafka(t)
	b, err := bus.New(config.Bus{Transport: config.TransportKafka, Kafka: config.Kafka{Brokers: brokers, Version: "3.6.0"}}, testLogger())
	require.NoError(t, err)
	defer b.Close()
	ctx := context.Background()
	base := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	const perTarget = 20
	targets := []string{"alpha", "beta", "gamma", "delta"}
	var all []events.Payload
	for i := 0; i < perTarget; i++ {
		for _, tg := range targets {
			q := &events.QueryStatObserved{Target: tg, QueryID: fmt.Sprint(i), Query: "select 1", Calls: 1,
				WindowStart: base, WindowEnd: base.Add(time.Duration(i+1) * time.Second)}
			if !batch {
				require.NoError(t, b.Publish(ctx, "test", "", q))
				continue
			}
			all = append(all, q)
			if i%5 == 0 { // other topics in between split the batch into runs
				all = append(all, &events.TableStatObserved{Target: tg, Schema: "public", Table: "t", ObservedAt: base.Add(time.Duration(i) * time.Second)})
			}
		}
	}
	if batch {
		done, err := b.PublishBatch(ctx, "test", "", all)
		require.NoError(t, err)
		require.Len(t, done, len(all))
		for i, ok := range done {
			require.True(t, ok, "payload %d of the batch not reported as published", i)
		}
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(events.Topic(events.TypeQueryStatObserved)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	partitionOf := map[string]int32{}
	order := map[string][]string{}
	deadline := time.Now().Add(30 * time.Second)
	for got := 0; got < perTarget*len(targets); {
		require.True(t, time.Now().Before(deadline), "consumed %d of %d messages", got, perTarget*len(targets))
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		fs := cl.PollFetches(fctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			got++
			key := string(r.Key)
			env, err := events.Unmarshal(r.Value)
			require.NoError(t, err)
			require.Equal(t, env.Subject, key, "Kafka key is not the envelope subject")
			if p, seen := partitionOf[key]; seen {
				require.Equal(t, p, r.Partition, "target %s spread over partitions %d and %d", key, p, r.Partition)
			}
			partitionOf[key] = r.Partition
			payload, err := events.Decode(env)
			require.NoError(t, err)
			order[key] = append(order[key], payload.(*events.QueryStatObserved).QueryID)
		})
	}
	for _, tg := range targets {
		require.Len(t, order[tg], perTarget)
		for i, id := range order[tg] {
			require.Equal(t, fmt.Sprint(i), id, "target %s out of order: %v", tg, order[tg])
		}
	}
	parts := map[int32]bool{}
	for _, p := range partitionOf {
		parts[p] = true
	}
	require.Greater(t, len(parts), 1, "four targets all on one partition: keys are not used")
}

// TestKafkaBatchOnClosedBus checks that a batch that cannot be published
// says so for every payload rather than reporting any as published.
func TestKafkaBatchOnClosedBus(t *testing.T) {
	brokers := newKafka(t)
	b, err := bus.New(config.Bus{Transport: config.TransportKafka, Kafka: config.Kafka{Brokers: brokers, Version: "3.6.0"}}, testLogger())
	require.NoError(t, err)
	require.NoError(t, b.Close())
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	done, err := b.PublishBatch(context.Background(), "test", "", []events.Payload{
		&events.QueryStatObserved{Target: "a", QueryID: "1", Query: "select 1", Calls: 1, WindowStart: at, WindowEnd: at.Add(time.Second)},
		&events.QueryStatObserved{Target: "a", QueryID: "2", Query: "select 1", Calls: 1, WindowStart: at, WindowEnd: at.Add(time.Second)},
	})
	require.Error(t, err)
	require.Equal(t, []bool{false, false}, done)
}
