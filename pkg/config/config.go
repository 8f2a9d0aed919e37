// Package config is IndexPilot's typed configuration: defaults in code, then
// indexpilot_config.yaml decoded strictly, then INDEXPILOT_* environment
// variables, which apply whether or not a file exists.
package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Modes of the auto-indexer.
const (
	ModeAdvisory = "advisory"
	ModeApply    = "apply"
)

// Transports of the bus.
const (
	TransportMemory = "memory"
	TransportKafka  = "kafka"
)

// DefaultFile is the file Load reads when no path is given and it exists.
const DefaultFile = "indexpilot_config.yaml"

// Config is the whole configuration. Field tags give the YAML key; the
// environment variable of a field is INDEXPILOT_ followed by its key path in
// upper case joined by "_" (INDEXPILOT_FEATURES_AUTO_INDEXER_MODE).
type Config struct {
	// DatabaseURL is the control database (INDEXPILOT_DATABASE_URL). It holds
	// the indexpilot schema and, when no target is listed, is the one target.
	DatabaseURL string     `yaml:"database_url" secret:"true"`
	Targets     []Target   `yaml:"targets"`
	Bus         Bus        `yaml:"bus"`
	Features    Features   `yaml:"features"`
	Collector   Collector  `yaml:"collector"`
	Scorer      Scorer     `yaml:"scorer"`
	Gatekeeper  Gatekeeper `yaml:"gatekeeper"`
	Executor    Executor   `yaml:"executor"`
	Adapters    Adapters   `yaml:"adapters"`
	Log         Log        `yaml:"log"`
	Dashboard   Dashboard  `yaml:"dashboard"`
	// Connections bounds the connections opened to targets and to the
	// control database.
	Connections Connections `yaml:"connections"`
}

// Bus chooses the transport between the stages.
type Bus struct {
	// Transport is "memory" (one process, the default) or "kafka".
	Transport string `yaml:"transport"`
	Kafka     Kafka  `yaml:"kafka"`
}

// Kafka is the Kafka transport's settings.
type Kafka struct {
	Brokers []string `yaml:"brokers"`
	// Version is the Kafka protocol version Sarama speaks (e.g. "3.6.0").
	Version string `yaml:"version"`
}

// Log settings.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Default is the configuration before any file or environment.
func Default() Config {
	return Config{
		Bus:         Bus{Transport: TransportMemory, Kafka: Kafka{Version: "3.6.0"}},
		Features:    defaultFeatures(),
		Gatekeeper:  defaultGatekeeper(),
		Collector:   defaultCollector(),
		Scorer:      defaultScorer(),
		Executor:    defaultExecutor(),
		Adapters:    defaultAdapters(),
		Log:         Log{Level: "info", Format: "json"},
		Connections: defaultConnections(),
	}
}

// Load builds the effective configuration. path "" means DefaultFile if it
// exists; a named path that does not exist is an error. env is the process
// environment as os.Environ gives it (nil means os.Environ()).
func Load(path string, env []string) (Config, error) {
	cfg := Default()
	if path == "" {
		if _, err := os.Stat(DefaultFile); err == nil {
			path = DefaultFile
		}
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("read config: %w", err)
		}
		if err := decodeYAML(b, &cfg); err != nil {
			return Config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if env == nil {
		env = os.Environ()
	}
	if err := applyEnv(&cfg, env); err != nil {
		return Config{}, err
	}
	if len(cfg.Targets) == 0 && cfg.DatabaseURL != "" {
		cfg.Targets = []Target{{Name: "main", DSN: cfg.DatabaseURL}}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports every problem at once, one per line.
func (c Config) Validate() error {
	var probs []string
	add := func(f string, a ...any) { probs = append(probs, fmt.Sprintf(f, a...)) }
	if c.DatabaseURL == "" {
		add("database_url: not set (set INDEXPILOT_DATABASE_URL)")
	}
	switch c.Bus.Transport {
	case TransportMemory:
	case TransportKafka:
		if len(c.Bus.Kafka.Brokers) == 0 {
			add("bus.kafka.brokers: empty while bus.transport is kafka")
		}
	default:
		add("bus.transport: %q is not memory or kafka", c.Bus.Transport)
	}
	c.validateTargets(add)
	c.Features.validate(add)
	c.Collector.validate(add)
	c.Scorer.validate(add)
	c.Gatekeeper.validate(add)
	c.Executor.validate(add)
	c.Adapters.validate(add)
	c.Dashboard.validate(add)
	c.Connections.validate(add)
	switch c.Log.Format {
	case "json", "text":
	default:
		add("log.format: %q is not json or text", c.Log.Format)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		add("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	if len(probs) == 0 {
		return nil
	}
	sort.Strings(probs)
	return errors.New("invalid config: " + strings.Join(probs, "; "))
}

// Target returns the target called name.
func (c Config) Target(name string) (Target, bool) {
	for _, t := range c.Targets {
		if t.Name == name {
			return t, true
		}
	}
	return Target{}, false
}
