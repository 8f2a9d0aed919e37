package config

import "regexp"

// Target is one database being watched and indexed. Name is stable: it is
// the Kafka partition key and appears in every event and row about it.
type Target struct {
	Name string `yaml:"name"`
	DSN  string `yaml:"dsn" secret:"true"`
}

var targetName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (c Config) validateTargets(add func(string, ...any)) {
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
}
