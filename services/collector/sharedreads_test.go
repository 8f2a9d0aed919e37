package collector

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/pgtest"
	"github.com/indexpilot/indexpilot/services/collector/internal/pgstat"
)

// TestSharedReadsServeTwoDatabases checks that two targets on one server
// share pg_stat_statements reads: the second target's read within the
// freshness reuses the first (same time), each target gets its own
// database's statements with their texts, and texts are read again only
// for an id the last texts read did not have.
func TestSharedReadsServeTwoDatabases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b := pgtest.NewDatabase(t), pgtest.NewDatabase(t)
	a.RequireExtension(t, "pg_stat_statements")
	b.RequireExtension(t, "pg_stat_statements")
	a.Exec(t, "create table a_only (id int)")
	b.Exec(t, "create table b_only (id int)")
	// Several calls each: the server's pg_stat_statements is shared with
	// other tests and, when full, evicts its least-used entries first.
	for i := range 20 {
		_, err := a.Pool.Exec(ctx, "select id from a_only where id = $1", i)
		require.NoError(t, err)
		_, err = b.Pool.Exec(ctx, "select id from b_only where id = $1", i)
		require.NoError(t, err)
	}

	srcA, err := pgstat.ProbeStatements(ctx, a.Pool)
	require.NoError(t, err)
	srcB, err := pgstat.ProbeStatements(ctx, b.Pool)
	require.NoError(t, err)
	require.NotEqual(t, srcA.DBID, srcB.DBID)

	reads := newSharedReads()
	require.Equal(t, readKey(a.URL), readKey(b.URL), "both databases are on one server, read as one role")
	g, leaveA := reads.join(readKey(a.URL), "a")
	_, leaveB := reads.join(readKey(b.URL), "b")
	defer leaveB()

	t0 := time.Now().UTC().Truncate(time.Microsecond)
	ca, err := reads.read(ctx, g, "a", a.Pool, srcA, time.Time{}, time.Minute, func() time.Time { return t0 })
	require.NoError(t, err)
	cb, err := reads.read(ctx, g, "b", b.Pool, srcB, time.Time{}, time.Minute, func() time.Time { return t0.Add(time.Second) })
	require.NoError(t, err)
	require.Equal(t, t0, cb.At, "the second target reuses the first target's read")

	texts := func(c pgstat.Counters, member string, src pgstat.Source) map[string]bool {
		pool := a.Pool
		if member == "b" {
			pool = b.Pool
		}
		s, err := reads.sample(ctx, g, member, pool, src, c)
		require.NoError(t, err)
		out := map[string]bool{}
		for _, r := range s.Rows {
			out[r.Query] = true
		}
		return out
	}
	require.True(t, texts(ca, "a", srcA)["select id from a_only where id = $1"])
	textsAt := g.textsAt
	got := texts(cb, "b", srcB)
	require.True(t, got["select id from b_only where id = $1"], "the shared read holds the other database's rows")
	require.False(t, got["select id from a_only where id = $1"], "a target gets only its own database's rows")
	require.Equal(t, textsAt, g.textsAt, "the texts were read once for both targets")

	// A read older than the freshness, or not after the target's last
	// sample, is not reused.
	cc, err := reads.read(ctx, g, "b", b.Pool, srcB, t0, time.Minute, func() time.Time { return t0.Add(2 * time.Second) })
	require.NoError(t, err)
	require.Equal(t, t0.Add(2*time.Second), cc.At)
	cd, err := reads.read(ctx, g, "a", a.Pool, srcA, time.Time{}, time.Second, func() time.Time { return t0.Add(10 * time.Second) })
	require.NoError(t, err)
	require.Equal(t, t0.Add(10*time.Second), cd.At)

	// The reader leaving: the one target left reads alone, through its own
	// pool, its own database only.
	leaveA()
	require.Nil(t, g.reader)
	ce, err := reads.read(ctx, g, "b", b.Pool, srcB, time.Time{}, 0, func() time.Time { return t0.Add(20 * time.Second) })
	require.NoError(t, err)
	require.Nil(t, g.reader)
	require.Len(t, ce.ByDB, 1)
	require.Contains(t, ce.ByDB, srcB.DBID)
}
