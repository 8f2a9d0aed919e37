package config

import "time"

// Executor settings.
type Executor struct {
	LockTimeout      time.Duration `yaml:"lock_timeout"`
	StatementTimeout time.Duration `yaml:"statement_timeout"`
	MaxAttempts      int           `yaml:"max_attempts"`
	PollInterval     time.Duration `yaml:"poll_interval"`
	Lease            time.Duration `yaml:"lease"`
	// RecoverAfter is how long a recommendation may stay approved with no
	// build queued before the executor queues it without its decision
	// event (the event was lost or is stuck on the bus).
	RecoverAfter time.Duration `yaml:"recover_after"`
	// CPU watches the database's CPU during a build.
	CPU ExecutorCPU `yaml:"cpu"`
	// Validation compares the targeted statements before and after a build.
	Validation Validation `yaml:"validation"`
}

// ExecutorCPU is the CPU watch of a running build: when the database's CPU
// stays above CeilingPct for Samples consecutive samples taken every
// Interval, the build is cancelled, its leftover dropped, and it is
// re-queued as deferred for DeferFor.
type ExecutorCPU struct {
	Enabled    bool          `yaml:"enabled"`
	CeilingPct float64       `yaml:"ceiling_pct"`
	Samples    int           `yaml:"samples"`
	Interval   time.Duration `yaml:"interval"`
	DeferFor   time.Duration `yaml:"defer_for"`
	// Cores is the core count used when the CPU is estimated from active
	// backends (no access to /proc/stat); 0 asks the server.
	Cores int `yaml:"cores"`
}

// Validation settings: the before window, the after window (until every
// targeted statement has MinCalls calls, at least MinWait and at most
// MaxWait after the build), and the thresholds of the verdict.
type Validation struct {
	Enabled         bool          `yaml:"enabled"`
	BeforeWindow    time.Duration `yaml:"before_window"`
	MinCalls        int64         `yaml:"min_calls"`
	MinWait         time.Duration `yaml:"min_wait"`
	MaxWait         time.Duration `yaml:"max_wait"`
	ImprovedPct     float64       `yaml:"improved_pct"`
	RegressedPct    float64       `yaml:"regressed_pct"`
	RevertNoChange  bool          `yaml:"revert_no_change"`
	RevertRegressed bool          `yaml:"revert_regressed"`
}

func defaultExecutor() Executor {
	return Executor{
		LockTimeout: 5 * time.Second, StatementTimeout: time.Hour, MaxAttempts: 3,
		PollInterval: time.Second, Lease: time.Minute, RecoverAfter: time.Minute,
		CPU: ExecutorCPU{Enabled: true, CeilingPct: 90, Samples: 3, Interval: 5 * time.Second, DeferFor: 10 * time.Minute},
		Validation: Validation{
			Enabled: true, BeforeWindow: 24 * time.Hour, MinCalls: 100, MinWait: 5 * time.Minute, MaxWait: 24 * time.Hour,
			ImprovedPct: 10, RegressedPct: 10, RevertNoChange: true, RevertRegressed: true,
		},
	}
}

func (e Executor) validate(add func(string, ...any)) {
	positive(add, "executor.lock_timeout", e.LockTimeout)
	positive(add, "executor.statement_timeout", e.StatementTimeout)
	positive(add, "executor.poll_interval", e.PollInterval)
	positive(add, "executor.lease", e.Lease)
	positive(add, "executor.recover_after", e.RecoverAfter)
	if e.MaxAttempts < 1 {
		add("executor.max_attempts: %d must be at least 1", e.MaxAttempts)
	}
	if e.CPU.Enabled {
		if e.CPU.CeilingPct <= 0 || e.CPU.CeilingPct > 100 {
			add("executor.cpu.ceiling_pct: %g must be in (0, 100]", e.CPU.CeilingPct)
		}
		if e.CPU.Samples < 1 {
			add("executor.cpu.samples: %d must be at least 1", e.CPU.Samples)
		}
		positive(add, "executor.cpu.interval", e.CPU.Interval)
		positive(add, "executor.cpu.defer_for", e.CPU.DeferFor)
	}
	if e.CPU.Cores < 0 {
		add("executor.cpu.cores: %d must not be negative", e.CPU.Cores)
	}
	v := e.Validation
	if v.Enabled {
		positive(add, "executor.validation.before_window", v.BeforeWindow)
		positive(add, "executor.validation.max_wait", v.MaxWait)
		if v.MinWait < 0 || v.MinWait > v.MaxWait {
			add("executor.validation.min_wait: %s must be between 0 and max_wait", v.MinWait)
		}
		if v.MinCalls < 1 {
			add("executor.validation.min_calls: %d must be at least 1", v.MinCalls)
		}
		if v.ImprovedPct < 0 || v.RegressedPct < 0 {
			add("executor.validation: improved_pct and regressed_pct must not be negative")
		}
	}
}
