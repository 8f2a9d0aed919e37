package config

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAdaptersDefaultsAreOff(t *testing.T) {
	a := Default().Adapters
	require.False(t, a.Enabled())
	require.False(t, a.OTLP.Enabled)
	require.Empty(t, a.Listen)
	var probs []string
	a.validate(func(f string, args ...any) { probs = append(probs, f) })
	require.Empty(t, probs)
}

func TestAdaptersFromEnvironmentAndValidation(t *testing.T) {
	cfg, err := Load("", []string{
		"INDEXPILOT_DATABASE_URL=postgres://u@h/db",
		"INDEXPILOT_ADAPTERS_LISTEN=:9464",
		"INDEXPILOT_ADAPTERS_PROMETHEUS_ENABLED=true",
		"INDEXPILOT_ADAPTERS_DATADOG_ENABLED=true",
		"INDEXPILOT_ADAPTERS_DATADOG_TAGS=env:test, team:db",
		"INDEXPILOT_ADAPTERS_OTLP_ENABLED=true",
		"INDEXPILOT_ADAPTERS_OTLP_METRIC_INTERVAL=5s",
		"INDEXPILOT_ADAPTERS_HEALTH_INTERVAL=2m",
	})
	require.NoError(t, err)
	a := cfg.Adapters
	require.True(t, a.Enabled())
	require.Equal(t, ":9464", a.Listen)
	require.Equal(t, []string{"env:test", "team:db"}, a.Datadog.Tags)
	require.Equal(t, 5*time.Second, a.OTLP.MetricInterval)
	require.Equal(t, 2*time.Minute, a.HealthInterval)

	_, err = Load("", []string{
		"INDEXPILOT_DATABASE_URL=postgres://u@h/db",
		"INDEXPILOT_ADAPTERS_PROMETHEUS_ENABLED=true",
		"INDEXPILOT_ADAPTERS_DATADOG_ENABLED=true",
		"INDEXPILOT_ADAPTERS_DATADOG_ADDRESS=nowhere",
		"INDEXPILOT_ADAPTERS_OTLP_ENABLED=true",
		"INDEXPILOT_ADAPTERS_OTLP_ENDPOINT=http://x",
		"INDEXPILOT_ADAPTERS_TRACING_SAMPLE_RATIO=2",
		"INDEXPILOT_ADAPTERS_HEALTH_INTERVAL=0s",
	})
	require.Error(t, err)
	for _, want := range []string{"adapters.listen: empty while adapters.prometheus is enabled",
		`adapters.datadog.address: "nowhere"`, `adapters.otlp.endpoint: "http://x"`, "adapters.tracing.sample_ratio: 2",
		"adapters.health_interval: 0s must be positive"} {
		require.True(t, strings.Contains(err.Error(), want), "%q not in %v", want, err)
	}
}
