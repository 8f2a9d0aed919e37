package postgres

import "time"

// SetDrainWait sets how long r's closed connections wait for the server to
// end their backend before their slot counts as free again (drainWait):
// a test makes it long so that a slot given back only by that bound shows
// as a wait no load could explain.
func SetDrainWait(r *Registry, d time.Duration) {
	r.mu.Lock()
	r.drainWait = d
	r.mu.Unlock()
}
