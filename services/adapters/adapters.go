package adapters

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/stage"
)

// Name is the stage name of the adapters: their consumer groups are
// indexpilot.adapters.<adapter>.<event type>.
const Name = "adapters"

// Run runs every enabled adapter as a process of its own until ctx ends,
// with the process's telemetry (stage.RunTelemetry): /healthz, /readyz and
// /metrics on adapters.listen, OTLP when configured.
func Run(ctx context.Context, cfg config.Config) error {
	return stage.RunTelemetry(ctx, cfg, Name, Start, stage.RunOptions{})
}

// ErrNoAdapter is returned by Start when no adapter is enabled.
var ErrNoAdapter = errors.New("no monitoring adapter enabled (adapters.prometheus, adapters.datadog or adapters.otlp with metrics)")

type adapter struct {
	consumer *Consumer
	interval time.Duration
}

// Start runs every enabled adapter on d until ctx is done: the
// OpenTelemetry one (named prometheus, or otlp when only OTLP metrics are
// on) on the global meter provider, and the Datadog one. Each consumes
// every event topic in its own consumer groups and keeps the
// recommendations-by-state gauge from the control database; on the kafka
// transport they also get the consumer groups' offset lag (PollLag).
func Start(ctx context.Context, d stage.Deps) error {
	if err := d.Check(); err != nil {
		return err
	}
	a := d.Config.Adapters
	var list []adapter
	if a.Prometheus.Enabled || (a.OTLP.Enabled && a.OTLP.Metrics) {
		name, every := "prometheus", a.Prometheus.StateInterval
		if !a.Prometheus.Enabled {
			name, every = "otlp", a.OTLP.MetricInterval
		}
		c, err := NewConsumer(name, NewOTelSink(otel.GetMeterProvider()))
		if err != nil {
			return err
		}
		list = append(list, adapter{c, every})
	}
	if a.Datadog.Enabled {
		s, err := NewDatadogSink(a.Datadog)
		if err != nil {
			return err
		}
		defer s.Close()
		c, err := NewConsumer("datadog", s)
		if err != nil {
			return err
		}
		list = append(list, adapter{c, a.Datadog.StateInterval})
	}
	if len(list) == 0 {
		return ErrNoAdapter
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(list))
	var routers []*bus.Router
	for _, ad := range list {
		r, err := d.Bus.NewRouter(Name+"."+ad.consumer.name, 30*time.Second)
		if err != nil {
			return err
		}
		for _, t := range events.Types {
			if err := r.Handle(string(t), t, ad.consumer.Handle); err != nil {
				return err
			}
		}
		routers = append(routers, r)
		go func() { errc <- r.Run(ctx) }()
		go ad.consumer.PollStates(ctx, d.Control, ad.interval, func(err error) {
			d.Logger.Warn("poll recommendation states", "adapter", ad.consumer.name, "error", err.Error())
		})
	}
	for i, r := range routers {
		select {
		case <-r.Running():
		case err := <-errc:
			return fmt.Errorf("adapter %s: %w", list[i].consumer.name, err)
		case <-ctx.Done():
			return nil
		}
	}
	sinks := make([]Sink, len(list))
	for i, ad := range list {
		sinks[i] = ad.consumer.sink
	}
	// The health gauges: one poller feeds every adapter.
	go PollHealth(ctx, d.Control, d.Config, a.HealthInterval, sinks, func(err error) {
		d.Logger.Warn("poll health gauges", "error", err.Error())
	})
	if d.Bus.Transport() == config.TransportKafka {
		// Offset lag exists on Kafka only: one poller feeds every adapter.
		every := list[0].interval
		for _, ad := range list {
			every = min(every, ad.interval)
		}
		go PollLag(ctx, func() (*KafkaLag, error) { return NewKafkaLag(d.Config.Bus.Kafka, GroupPrefix) }, every, sinks,
			func(err error) { d.Logger.Warn("poll kafka consumer lag", "error", err.Error()) })
	}
	d.Logger.Info("adapters running", "count", len(list))
	d.Ready()
	var errs []error
	keep := func(err error) {
		if err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	waiting := len(routers)
	select {
	case <-ctx.Done():
	case err := <-errc:
		keep(err)
		waiting--
		cancel()
	}
	for ; waiting > 0; waiting-- {
		keep(<-errc)
	}
	return errors.Join(errs...)
}
