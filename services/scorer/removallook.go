package scorer

import (
	"fmt"
	"sync"
	"time"
)

// removalLookEvery is the least time between two looks for removals on a
// target whose table statistics changed but whose workload did not. Each
// look takes one of the server's connections (connections.per_server);
// with every poll of 100 targets bringing new table statistics, looking
// on each would keep the budget busy and delay the scoring of changed
// workloads, while an index's disuse is judged over days.
const removalLookEvery = 5 * time.Minute

// lastRemovalLook is when each (scorer, target) last looked for removals
// only.
var lastRemovalLook sync.Map

// removalLookDue reports whether target's removals may be looked at now;
// when not, the target stays marked for a later round.
func (s *Scorer) removalLookDue(target string) bool {
	key := fmt.Sprintf("%p|%s", s, target)
	now := time.Now()
	if v, ok := lastRemovalLook.Load(key); ok && now.Sub(v.(time.Time)) < removalLookEvery {
		s.markRemovalsDirty(target)
		return false
	}
	lastRemovalLook.Store(key, now)
	return true
}
