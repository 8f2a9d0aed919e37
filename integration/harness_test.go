package integration

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// allTopics is every topic the pipeline uses, with its poison topic.
func allTopics() []string {
	var out []string
	for _, t := range events.Types {
		out = append(out, events.Topic(t), events.PoisonTopic(events.Topic(t)))
	}
	return out
}

// newKafka starts an in-process Kafka-protocol broker with every topic
// created (three partitions each) and returns its addresses.
func newKafka(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.SeedTopics(3, allTopics()...),
		kfake.AllowAutoTopicCreation(),
	)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

func testLogger() *slog.Logger {
	if os.Getenv("INDEXPILOT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// running is one stage started as its own "process": its own bus
// connection and target pools, stopped by cancel.
type running struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		require.NoError(t, r.err, "stage %s stopped with an error", r.name)
	case <-time.After(30 * time.Second):
		t.Fatalf("stage %s did not stop within 30 s", r.name)
	}
}

type startFunc func(ctx context.Context, d stage.Deps) error

// startStage starts one stage over Kafka and waits until it is ready.
func startStage(t testing.TB, name string, start startFunc, cfg config.Config, control *pgxpool.Pool) *running {
	t.Helper()
	logger := testLogger().With("stage", name)
	b, err := bus.New(cfg.Bus, logger)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	targets := stage.NewTargets(cfg.Targets, name)
	d := stage.Deps{Config: cfg, Bus: b, Control: control, Targets: targets, Logger: logger,
		OnReady: func() {
			select {
			case <-ready:
			default:
				close(ready)
			}
		}}
	r := &running{name: name, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = start(ctx, d)
		targets.Close()
		_ = b.Close()
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
		}
	})
	select {
	case <-ready:
	case <-r.done:
		t.Fatalf("stage %s exited before it was ready: %v", name, r.err)
	case <-time.After(60 * time.Second):
		t.Fatalf("stage %s not ready within 60 s", name)
	}
	return r
}
