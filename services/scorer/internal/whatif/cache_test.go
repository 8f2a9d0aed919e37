package whatif

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	c := newCache(2)
	c.put(cacheEntry{key: "a", value: 1})
	c.put(cacheEntry{key: "b", value: 2})
	_, ok := c.get("a") // a is now the most recent
	require.True(t, ok)
	c.put(cacheEntry{key: "c", value: 3})
	_, ok = c.get("b")
	require.False(t, ok, "b was least recently used and must be gone")
	e, ok := c.get("x", "c")
	require.True(t, ok)
	require.Equal(t, 3.0, e.value)
	st := c.stats()
	require.Equal(t, CacheStats{Hits: 2, Misses: 1, Entries: 2}, st)
	c.reset()
	require.Equal(t, 0, c.stats().Entries)
}

func TestCostKeyIsUnambiguous(t *testing.T) {
	t.Parallel()
	// Length prefixes keep parts from running into each other.
	require.NotEqual(t, costKey(kindCost, "ab", []string{"c"}), costKey(kindCost, "a", []string{"bc"}))
	require.NotEqual(t, costKey(kindCost, "q", nil), costKey(kindNotEvaluable, "q", nil))
	require.Equal(t, []string{"a", "b"}, sortedUnique([]string{"b", "a", "b", "a"}))
}
