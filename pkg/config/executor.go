package config

import "time"

// Executor settings.
type Executor struct {
	LockTimeout      time.Duration `yaml:"lock_timeout"`
	StatementTimeout time.Duration `yaml:"statement_timeout"`
	MaxAttempts      int           `yaml:"max_attempts"`
	PollInterval     time.Duration `yaml:"poll_interval"`
	Lease            time.Duration `yaml:"lease"`
}

func defaultExecutor() Executor {
	return Executor{
		LockTimeout: 5 * time.Second, StatementTimeout: time.Hour, MaxAttempts: 3,
		PollInterval: time.Second, Lease: time.Minute,
	}
}

func (e Executor) validate(add func(string, ...any)) {
	positive(add, "executor.lock_timeout", e.LockTimeout)
	positive(add, "executor.statement_timeout", e.StatementTimeout)
	positive(add, "executor.poll_interval", e.PollInterval)
	positive(add, "executor.lease", e.Lease)
	if e.MaxAttempts < 1 {
		add("executor.max_attempts: %d must be at least 1", e.MaxAttempts)
	}
}
