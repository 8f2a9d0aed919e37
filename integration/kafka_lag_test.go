package integration

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
	"github.com/indexpilot/indexpilot/services/adapters"
	"github.com/indexpilot/indexpilot/services/adapters/adapterstest"
)

// TestKafkaConsumerLagGauge: seven events wait on a partition and a
// consumer group has committed three of them. The adapters, run over Kafka,
// report the group's offset lag there as 4 on /metrics and over DogStatsD;
// once a consumer in that group has caught up the gauge reads 0, as it does
// for the adapters' own groups, which consumed everything.
func TestKafkaConsumerLagGauge(t *testing.T) {
	brokers := newKafka(t)
	db := pgtest.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := metadata.Migrate(ctx, db.Pool)
	require.NoError(t, err)

	dd := adapterstest.ListenDogStatsD(t)
	cfg := config.Default()
	cfg.DatabaseURL = db.URL
	cfg.Bus = config.Bus{Transport: config.TransportKafka, Kafka: config.Kafka{Brokers: brokers, Version: "3.6.0"}}
	cfg.Adapters.Listen = "127.0.0.1:0" // validation wants it; startStage serves nothing
	cfg.Adapters.Prometheus = config.PrometheusAdapter{Enabled: true, StateInterval: 100 * time.Millisecond}
	cfg.Adapters.Datadog.Enabled = true
	cfg.Adapters.Datadog.Address = dd.Addr()
	cfg.Adapters.Datadog.StateInterval = 100 * time.Millisecond
	require.NoError(t, cfg.Validate())

	prevM := otel.GetMeterProvider()
	defer otel.SetMeterProvider(prevM)
	sdk, err := telemetry.Setup(ctx, cfg, "adapters", telemetry.SetupOptions{})
	require.NoError(t, err)
	defer sdk.Shutdown(context.Background())

	b, err := bus.New(cfg.Bus, testLogger())
	require.NoError(t, err)
	defer b.Close()
	var qs events.Payload
	for _, p := range events.Examples() {
		if p.EventType() == events.TypeQueryStatObserved {
			qs = p
		}
	}
	const published, committed = 7, 3
	for range published {
		require.NoError(t, b.Publish(ctx, "lagcheck", "corr-lag", qs))
	}

	// The partition holding them (one target: one partition), and a group
	// that committed the first three.
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Consumer.Offsets.AutoCommit.Enable = false
	client, err := sarama.NewClient(brokers, sc)
	require.NoError(t, err)
	defer client.Close()
	topic := events.Topic(events.TypeQueryStatObserved)
	parts, err := client.Partitions(topic)
	require.NoError(t, err)
	part := int32(-1)
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		require.NoError(t, err)
		if hwm == published {
			part = p
		}
	}
	require.NotEqual(t, int32(-1), part, "no partition holds the %d events", published)
	group := events.ConsumerGroup("lagcheck", "querystats")
	cg, err := sarama.NewConsumerGroupFromClient(group, client)
	require.NoError(t, err)
	take := &takeN{n: committed, done: make(chan struct{})}
	cctx, stopTaking := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() { consumed <- cg.Consume(cctx, []string{topic}, take) }()
	select {
	case <-take.done:
	case err := <-consumed:
		t.Fatalf("consumer group stopped before taking %d: %v", committed, err)
	case <-time.After(60 * time.Second):
		t.Fatalf("consumer group did not take %d within 60 s", committed)
	}
	stopTaking()
	<-consumed
	require.NoError(t, cg.Close())

	startStage(t, adapters.Name, adapters.Start, cfg, db.Pool)

	series := func(g string, lag int) string {
		return fmt.Sprintf(`indexpilot_consumer_lag_messages{group=%q,partition="%d",topic=%q} %d`, g, part, topic, lag)
	}
	scrapeHas := func(line string) bool {
		rec := httptest.NewRecorder()
		sdk.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		for _, l := range strings.Split(rec.Body.String(), "\n") {
			if l == line {
				return true
			}
		}
		return false
	}
	ddHas := func(g string, lag int) bool {
		want := fmt.Sprintf("indexpilot.consumer_lag_messages:%d|g|#group:%s,topic:%s,partition:%d", lag, g, topic, part)
		for _, l := range dd.Lines() {
			if l == want {
				return true
			}
		}
		return false
	}
	require.Eventually(t, func() bool { return scrapeHas(series(group, published-committed)) }, 30*time.Second, 50*time.Millisecond,
		"no %s on /metrics", series(group, published-committed))
	require.Eventually(t, func() bool { return ddHas(group, published-committed) }, 10*time.Second, 50*time.Millisecond,
		"no lag of %d over DogStatsD", published-committed)
	own := events.ConsumerGroup(adapters.Name+".prometheus", string(events.TypeQueryStatObserved))
	require.Eventually(t, func() bool { return scrapeHas(series(own, 0)) }, 30*time.Second, 50*time.Millisecond,
		"the adapters' own group is not caught up: no %s", series(own, 0))

	// A consumer in the group reads the four left and commits: lag 0.
	r, err := b.NewRouter("lagcheck", 10*time.Second)
	require.NoError(t, err)
	require.NoError(t, r.Handle("querystats", events.TypeQueryStatObserved, func(context.Context, events.Envelope, events.Payload) ([]events.Payload, error) {
		return nil, nil
	}))
	go func() { _ = r.Run(ctx) }()
	defer r.Close()
	require.Eventually(t, func() bool { return scrapeHas(series(group, 0)) }, 60*time.Second, 50*time.Millisecond,
		"the group caught up but the gauge does not read 0")
	require.Eventually(t, func() bool { return ddHas(group, 0) }, 10*time.Second, 50*time.Millisecond)
}

// takeN is a consumer-group handler that consumes and commits the first n
// messages it is given, then stops.
type takeN struct {
	n     int
	taken int
	done  chan struct{}
}

func (*takeN) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*takeN) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *takeN) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		if h.taken == h.n {
			return nil
		}
		sess.MarkMessage(msg, "")
		h.taken++
		if h.taken == h.n {
			sess.Commit()
			close(h.done)
			return nil
		}
	}
	return nil
}
