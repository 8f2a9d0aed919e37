package config

import "time"

// positive reports a duration setting that is zero or negative.
func positive(add func(string, ...any), key string, d time.Duration) {
	if d <= 0 {
		add("%s: %s must be positive", key, d)
	}
}
