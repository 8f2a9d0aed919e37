package integration

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/adapters"
	"github.com/indexpilot/indexpilot/services/executor"
	"github.com/indexpilot/indexpilot/services/gatekeeper"
	"github.com/indexpilot/indexpilot/services/scorer"
)

// malformed is one bad message and a phrase its poison reason must hold.
type malformed struct {
	kind, uuid, reason string
	body               []byte
	noSubject          bool
}

// badMessages are the malformed variants of valid, an event of type ty:
// not JSON (and without a subject header), a schema version this build
// does not know, an event of another type, a required field empty (only
// validation refuses it), a value of the wrong JSON type, an id that is
// not the payload's, and a message over events.MaxEventBytes.
func badMessages(t *testing.T, ty events.Type, valid, other events.Payload) []malformed {
	t.Helper()
	at := time.Date(2026, 11, 25, 12, 0, 5, 0, time.UTC)
	env, err := events.Wrap(valid, "poison-test", "", at)
	require.NoError(t, err)
	wire := func(e events.Envelope) []byte {
		b, err := events.Marshal(e)
		require.NoError(t, err)
		return b
	}
	v2 := env
	v2.Type = events.Type(strings.TrimSuffix(string(ty), ".v1") + ".v2")
	otherEnv, err := events.Wrap(other, "poison-test", "", at)
	require.NoError(t, err)
	forged := env
	forged.ID = "forged"

	// A required field: the target, or on the control topic the change id.
	field := "target"
	if ty == events.TypeBypassChanged {
		field = "change_id"
	}
	var data map[string]any
	require.NoError(t, json.Unmarshal(env.Data, &data))
	data[field] = ""
	missing := env
	missing.Data = mustJSON(t, data)
	data[field] = []string{"main"}
	wrongType := env
	wrongType.Data = mustJSON(t, data)

	body := wire(env)
	huge := append([]byte("{"+strings.Repeat(" ", events.MaxEventBytes)), body[1:]...)
	return []malformed{
		{kind: "not_json", body: []byte("{{{ not json"), reason: "decode envelope", noSubject: true},
		{kind: "version", body: wire(v2), reason: "unknown event type"},
		{kind: "other_type", body: wire(otherEnv), reason: "carries"},
		{kind: "missing_field", body: wire(missing), reason: "missing " + field},
		{kind: "wrong_type", body: wire(wrongType), reason: "cannot unmarshal"},
		{kind: "forged_id", body: wire(forged), reason: "is not the payload's id"},
		{kind: "oversized", body: huge, reason: "over the"},
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

// validEvents is one valid event of every type, each harmless to process:
// the decision is advisory, the bypass names a feature nothing uses.
func validEvents() map[events.Type]events.Payload {
	out := map[events.Type]events.Payload{}
	for _, p := range events.Examples() {
		out[p.EventType()] = p
	}
	d := *out[events.TypeIndexDecisionMade].(*events.IndexDecisionMade)
	d.Verdict, d.Reason = events.VerdictAdvised, events.ReasonAdvisoryMode
	out[d.EventType()] = &d
	b := *out[events.TypeBypassChanged].(*events.BypassChanged)
	b.Level, b.Name, b.ExpiresAt = "feature", "poison_test", nil
	out[b.EventType()] = &b
	return out
}

// TestMalformedEventsArePoisonedPerTopic publishes, on every topic a stage
// consumes, seven malformed messages and then a valid event, over the
// Kafka protocol (kfake, the production watermill-kafka code path), with
// the scorer, gatekeeper, executor and monitoring adapters running on a
// real control database, plus a bypass watcher as every stage runs one.
// Every malformed message lands in its topic's poison topic with a reason
// that names the fault, every consumer group moves past it to the valid
// event (processed: its row written, the bypass applied), and no row is
// written for a malformed one. The broker takes messages of 4 MiB, so the
// oversized one reaches the consumers; its parked copy is cut short.
func TestMalformedEventsArePoisonedPerTopic(t *testing.T) {
	db := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)
	// The tables and indexes the valid events name.
	db.Load(t, `create table public.contacts (id bigint primary key, tenant_id int, email text, name text)`,
		`create index contacts_email_idx on public.contacts (email)`,
		`create index contacts_email_name_idx on public.contacts (email, name)`)

	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, allTopics()...),
		kfake.AllowAutoTopicCreation(), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "4194304"}))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()

	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Targets = []config.Target{{Name: "main", DSN: db.URL}}
	cfg.Bus = config.Bus{Transport: config.TransportKafka, Kafka: config.Kafka{Brokers: brokers, Version: "3.6.0"}}
	cfg.Scorer.Interval = time.Hour // store statistics, score nothing
	cfg.Scorer.TriggerDebounce = 0
	cfg.Features.Bypass.RefreshInterval = time.Hour // only the control topic changes the watcher
	cfg.Gatekeeper.CPU.Source = config.CPUSourceNone
	cfg.Adapters.Prometheus.Enabled = true
	cfg.Adapters.Listen = "127.0.0.1:0" // Start does not serve it
	require.NoError(t, cfg.Validate())

	startStage(t, "scorer", scorer.Start, cfg, db.Pool)
	startStage(t, "gatekeeper", gatekeeper.Start, cfg, db.Pool)
	startStage(t, "executor", executor.Start, cfg, db.Pool)
	startStage(t, "adapters", adapters.Start, cfg, db.Pool)
	wb, err := bus.New(cfg.Bus, testLogger())
	require.NoError(t, err)
	t.Cleanup(func() { _ = wb.Close() })
	watched, err := bypass.Watch(ctx, stage.Deps{Config: cfg, Bus: wb, Control: db.Pool,
		Targets: stage.NewTargets(cfg.Targets, "poison-test"), Logger: testLogger()}, "poisontest")
	require.NoError(t, err)

	// The consumed topics, and what reads each.
	consumed := map[events.Type][]string{
		events.TypeQueryStatObserved:    {events.ConsumerGroup(scorer.Name, "querystats")},
		events.TypeTableStatObserved:    {events.ConsumerGroup(scorer.Name, "tablestats")},
		events.TypeIndexCandidateScored: {gatekeeper.Consumer},
		events.TypeIndexRemovalProposed: {gatekeeper.RemovalConsumer},
		events.TypeIndexDecisionMade:    {events.ConsumerGroup(executor.Name, executor.DecisionsHandler)},
	}
	for _, ty := range events.Types {
		if ty != events.TypeBypassChanged {
			consumed[ty] = append(consumed[ty], events.ConsumerGroup(adapters.Name+".prometheus", string(ty)))
		}
	}

	// Collect every poison topic from the start.
	var mu sync.Mutex
	parked := map[string]*message.Message{} // poison topic + "/" + uuid
	for _, ty := range events.Types {
		topic := events.PoisonTopic(events.Topic(ty))
		sub, err := wb.Subscriber("indexpilot.test.poison." + string(ty))
		require.NoError(t, err)
		t.Cleanup(func() { _ = sub.Close() })
		msgs, err := sub.Subscribe(ctx, topic)
		require.NoError(t, err)
		go func() {
			for m := range msgs {
				mu.Lock()
				parked[topic+"/"+m.UUID] = m
				mu.Unlock()
				m.Ack()
			}
		}()
	}

	// A raw producer that sends whatever it is given, up to 4 MiB, keyed
	// by the subject header or "main", so the malformed messages of a
	// topic share the partition of the valid event that follows them.
	pcfg := kafka.DefaultSaramaSyncPublisherConfig()
	pcfg.Producer.MaxMessageBytes = 4 << 20
	pcfg.Version = sarama.V3_6_0_0
	raw, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers, OverwriteSaramaConfig: pcfg,
		Marshaler: kafka.NewWithPartitioningMarshaler(func(_ string, m *message.Message) (string, error) {
			if s := m.Metadata.Get(bus.MetaSubject); s != "" {
				return s, nil
			}
			return "main", nil
		})}, watermill.NopLogger{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close() })

	valid := validEvents()
	bad := map[events.Type][]malformed{}
	for i, ty := range events.Types {
		other := valid[events.Types[(i+1)%len(events.Types)]]
		for _, m := range badMessages(t, ty, valid[ty], other) {
			m.uuid = "bad-" + m.kind + "-" + string(ty)
			msg := message.NewMessage(m.uuid, m.body)
			if !m.noSubject {
				msg.Metadata.Set(bus.MetaSubject, valid[ty].EventSubject())
			}
			require.NoError(t, raw.Publish(events.Topic(ty), msg), "publish %s on %s", m.kind, ty)
			bad[ty] = append(bad[ty], m)
		}
		require.NoError(t, wb.Publish(ctx, "poison-test", "", valid[ty]), "publish the valid %s", ty)
	}

	admin, err := sarama.NewClusterAdmin(brokers, func() *sarama.Config {
		sc := sarama.NewConfig()
		sc.Version = sarama.V3_6_0_0
		return sc
	}())
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	client, err := sarama.NewClient(brokers, sarama.NewConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = client.Close() })

	// Every group consumed its topic to the end (committed offset at the
	// high-water mark: at least 8 messages, the valid one after the bad
	// ones; the gatekeeper adds its decision to the decision topic).
	end := func(topic string) int64 {
		n, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
		require.NoError(t, err)
		return n
	}
	for ty, groups := range consumed {
		topic := events.Topic(ty)
		require.GreaterOrEqual(t, end(topic), int64(8), "messages on %s", topic)
		for _, g := range groups {
			require.Eventually(t, func() bool {
				res, err := admin.ListConsumerGroupOffsets(g, map[string][]int32{topic: {0}})
				if err != nil {
					return false
				}
				b := res.GetBlock(topic, 0)
				return b != nil && b.Offset == end(topic)
			}, 60*time.Second, 200*time.Millisecond, "group %s did not consume %s to its end", g, topic)
		}
	}

	// Every malformed message is parked with a reason naming its fault,
	// once per group that read it.
	for ty, list := range bad {
		topic := events.PoisonTopic(events.Topic(ty))
		for _, m := range list {
			var got *message.Message
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				got = parked[topic+"/"+m.uuid]
				return got != nil
			}, 30*time.Second, 100*time.Millisecond, "%s on %s not parked in %s", m.kind, ty, topic)
			require.Contains(t, got.Metadata.Get(bus.MetaPoisonReason), m.reason, "%s on %s", m.kind, ty)
			if m.kind == "oversized" {
				require.Len(t, got.Payload, bus.ParkedPrefixBytes)
				require.Equal(t, strconv.Itoa(len(m.body)), got.Metadata.Get(bus.MetaPoisonBytes))
			} else {
				require.Equal(t, string(m.body), string(got.Payload), "%s on %s parked changed", m.kind, ty)
			}
		}
	}

	// The valid events were processed; nothing was written for a bad one.
	count := func(sql string, args ...any) int {
		var n int
		require.NoError(t, db.Pool.QueryRow(ctx, sql, args...).Scan(&n), sql)
		return n
	}
	id := func(ty events.Type) string { return valid[ty].EventID() }
	require.Eventually(t, func() bool {
		return count(`select count(*) from indexpilot.processed_events where event_id = $1`, id(events.TypeIndexCandidateScored)) == 1 &&
			count(`select count(*) from indexpilot.processed_events where event_id = $1`, id(events.TypeIndexRemovalProposed)) == 1 &&
			count(`select count(*) from indexpilot.processed_events where event_id = $1`, id(events.TypeIndexDecisionMade)) == 1
	}, 30*time.Second, 100*time.Millisecond, "valid candidate, removal proposal and decision processed")
	byConsumer := func(c string) int {
		return count(`select count(*) from indexpilot.processed_events where consumer = $1`, c)
	}
	require.Equal(t, 1, byConsumer(gatekeeper.Consumer), "a malformed candidate was marked processed")
	require.Equal(t, 1, byConsumer(gatekeeper.RemovalConsumer), "a malformed removal proposal was marked processed")
	// The gatekeeper's advisory decision on the valid candidate is the
	// same fact as the valid decision (same candidate event, same
	// verdict: the same id), so the executor has exactly one row.
	require.Equal(t, 1, byConsumer(events.ConsumerGroup(executor.Name, executor.DecisionsHandler)),
		"a malformed decision was marked processed")
	q := valid[events.TypeQueryStatObserved].(*events.QueryStatObserved)
	require.Equal(t, 1, count(`select count(*) from indexpilot.workload_stats`))
	require.Equal(t, 1, count(`select count(*) from indexpilot.workload_stats where target = 'main' and query_id = $1`, q.QueryID))
	require.Equal(t, 1, count(`select count(*) from indexpilot.table_stats`))
	require.Equal(t, 1, count(`select count(*) from indexpilot.table_stats where target = 'main' and table_name = 'contacts'`))
	require.Equal(t, 1, count(`select count(*) from indexpilot.recommendations`))
	require.Equal(t, 1, count(`select count(*) from indexpilot.removal_proposals`))
	require.Equal(t, 0, count(`select count(*) from indexpilot.builds`))
	require.Eventually(t, func() bool {
		allowed, _ := watched.Allows(bypass.LevelFeature, "poison_test")
		return !allowed
	}, 30*time.Second, 100*time.Millisecond, "the valid bypass change not applied after the malformed ones")
}
