// Package config is IndexPilot's typed configuration: defaults in code, then
// indexpilot_config.yaml decoded strictly, then INDEXPILOT_* environment
// variables, which apply whether or not a file exists.
package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
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
	DatabaseURL string    `yaml:"database_url" secret:"true"`
	Targets     []Target  `yaml:"targets"`
	Bus         Bus       `yaml:"bus"`
	Features    Features  `yaml:"features"`
	Collector   Collector `yaml:"collector"`
	Scorer      Scorer    `yaml:"scorer"`
	Executor    Executor  `yaml:"executor"`
	Log         Log       `yaml:"log"`
}

// Target is one database being watched and indexed. Name is stable: it is
// the Kafka partition key and appears in every event and row about it.
type Target struct {
	Name string `yaml:"name"`
	DSN  string `yaml:"dsn" secret:"true"`
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

// Features holds the feature switches.
type Features struct {
	AutoIndexer AutoIndexer `yaml:"auto_indexer"`
}

// AutoIndexer governs index creation.
type AutoIndexer struct {
	// Mode is "advisory" (record recommendations, run no DDL; the default)
	// or "apply" (build approved indexes).
	Mode string `yaml:"mode"`
	// MinImprovementPct is the plan-cost cut a candidate must give at least
	// one statement to be proposed.
	MinImprovementPct float64 `yaml:"min_improvement_pct"`
}

// Collector settings.
type Collector struct {
	Interval time.Duration `yaml:"interval"`
	// QueryTimeout bounds each statistics query on a target.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

// Scorer settings.
type Scorer struct {
	// Interval is how often the workload of a changed target is re-scored.
	Interval time.Duration `yaml:"interval"`
	// Window is how far back the workload reaches.
	Window time.Duration `yaml:"window"`
	// MaxColumns caps the width of multi-column candidates.
	MaxColumns int `yaml:"max_columns"`
	// MaxNewIndexes caps the candidates chosen per target and run.
	MaxNewIndexes int `yaml:"max_new_indexes"`
	// MinCalls ignores statements called fewer times in the window.
	MinCalls int64 `yaml:"min_calls"`
	// FormulaVersion tags every candidate; change it to re-score a replay.
	FormulaVersion string `yaml:"formula_version"`
}

// Executor settings.
type Executor struct {
	LockTimeout      time.Duration `yaml:"lock_timeout"`
	StatementTimeout time.Duration `yaml:"statement_timeout"`
	MaxAttempts      int           `yaml:"max_attempts"`
	PollInterval     time.Duration `yaml:"poll_interval"`
	Lease            time.Duration `yaml:"lease"`
}

// Log settings.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Default is the configuration before any file or environment.
func Default() Config {
	return Config{
		Bus: Bus{Transport: TransportMemory, Kafka: Kafka{Version: "3.6.0"}},
		Features: Features{AutoIndexer: AutoIndexer{
			Mode:              ModeAdvisory,
			MinImprovementPct: 20,
		}},
		Collector: Collector{Interval: 30 * time.Second, QueryTimeout: 10 * time.Second},
		Scorer: Scorer{
			Interval: time.Minute, Window: 24 * time.Hour, MaxColumns: 3, MaxNewIndexes: 10,
			MinCalls: 1, FormulaVersion: "v1",
		},
		Executor: Executor{
			LockTimeout: 5 * time.Second, StatementTimeout: time.Hour, MaxAttempts: 3,
			PollInterval: time.Second, Lease: time.Minute,
		},
		Log: Log{Level: "info", Format: "json"},
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

var targetName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// Validate reports every problem at once, one per line.
func (c Config) Validate() error {
	var probs []string
	add := func(f string, a ...any) { probs = append(probs, fmt.Sprintf(f, a...)) }
	if c.DatabaseURL == "" {
		add("database_url: not set (set INDEXPILOT_DATABASE_URL)")
	}
	switch c.Features.AutoIndexer.Mode {
	case ModeAdvisory, ModeApply:
	default:
		add("features.auto_indexer.mode: %q is not advisory or apply", c.Features.AutoIndexer.Mode)
	}
	if p := c.Features.AutoIndexer.MinImprovementPct; p <= 0 || p > 100 {
		add("features.auto_indexer.min_improvement_pct: %v is not in (0, 100]", p)
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
	seen := map[string]bool{}
	for i, t := range c.Targets {
		if !targetName.MatchString(t.Name) {
			add("targets[%d].name: %q must match %s", i, t.Name, targetName)
		}
		if seen[t.Name] {
			add("targets[%d].name: %q is listed twice", i, t.Name)
		}
		seen[t.Name] = true
		if t.DSN == "" {
			add("targets[%d].dsn: not set", i)
		}
	}
	pos := func(key string, d time.Duration) {
		if d <= 0 {
			add("%s: %s must be positive", key, d)
		}
	}
	pos("collector.interval", c.Collector.Interval)
	pos("collector.query_timeout", c.Collector.QueryTimeout)
	pos("scorer.interval", c.Scorer.Interval)
	pos("scorer.window", c.Scorer.Window)
	pos("executor.lock_timeout", c.Executor.LockTimeout)
	pos("executor.statement_timeout", c.Executor.StatementTimeout)
	pos("executor.poll_interval", c.Executor.PollInterval)
	pos("executor.lease", c.Executor.Lease)
	if c.Scorer.MaxColumns < 1 || c.Scorer.MaxColumns > 32 {
		add("scorer.max_columns: %d is not in [1, 32]", c.Scorer.MaxColumns)
	}
	if c.Scorer.MaxNewIndexes < 1 {
		add("scorer.max_new_indexes: %d must be at least 1", c.Scorer.MaxNewIndexes)
	}
	if c.Scorer.FormulaVersion == "" {
		add("scorer.formula_version: empty")
	}
	if c.Executor.MaxAttempts < 1 {
		add("executor.max_attempts: %d must be at least 1", c.Executor.MaxAttempts)
	}
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
