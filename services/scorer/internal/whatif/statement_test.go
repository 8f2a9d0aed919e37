package whatif

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	ok := []string{
		"select * from t where a = $1",
		"SELECT 1;",
		"select 1 ;  ; -- trailing comment\n",
		"  /* leading */ -- line\n with x as (select 1) select * from x",
		"(select a from t) union (select a from u)",
		"update t set a = $1 where b = $2",
		"DELETE FROM t WHERE id = $1",
		"select ';' from t",
		"select 'it''s; fine' from t",
		`select E'a\'; b' from t`,
		`select "weird;name" from t`,
		"select $$ ; $$ from t",
		"select $tag$ a ; $ b $tag$ from t",
		"select /* a ; /* nested ; */ still ; */ 1",
		"select a$b from t where c = $1",
	}
	for _, q := range ok {
		require.NoError(t, Check(q), "query %q", q)
	}
	refused := []string{
		"",
		"   ",
		"-- only a comment",
		"insert into t values ($1)",
		"explain select 1",
		"copy t to stdout",
		"values (1)",
		"drop table t",
		"selectx from t",
		"update_log",
		"select 1; delete from t",
		"select 1; ; delete from t",
		"select 1;/* c */delete from t",
		"select 'a'; delete from t",
		`select E'\''; delete from t`,
		"select $q$ x $q$; delete from t",
		"select 'unterminated",
		"select /* unterminated",
	}
	for _, q := range refused {
		require.ErrorIs(t, Check(q), ErrRefused, "query %q", q)
	}
}

func TestTotalCost(t *testing.T) {
	t.Parallel()
	c, err := totalCost([]byte(`[{"Plan": {"Node Type": "Seq Scan", "Total Cost": 12.5}}]`))
	require.NoError(t, err)
	require.Equal(t, 12.5, c)
	c, err = totalCost([]byte(`[{"Plan": {"Total Cost": 1}}, {"Plan": {"Total Cost": 2.25}}]`))
	require.NoError(t, err)
	require.Equal(t, 3.25, c)
	_, err = totalCost([]byte(`[]`))
	require.ErrorIs(t, err, ErrNotEvaluable)
	_, err = totalCost([]byte(`[{"Plan": {}}]`))
	require.ErrorIs(t, err, ErrNotEvaluable)
	_, err = totalCost([]byte(`not json`))
	require.Error(t, err)
}

func TestBTreeSize(t *testing.T) {
	t.Parallel()
	// An empty table: the metapage and an empty root leaf.
	require.Equal(t, int64(2*8192), btreeSize(0, 0, 8192, 4))
	// 1M distinct int4 keys: 16-byte tuples + 4-byte pointers, 366 per
	// leaf at 90 % fill.
	got := btreeSize(1_000_000, 1_000_000, 8192, 4)
	require.InDelta(t, 2733*8192, float64(got), 40*8192, "got %d bytes", got)
	// Wider keys, more pages.
	require.Greater(t, btreeSize(1_000_000, 1_000_000, 8192, 40), got)
	// Ten distinct keys: posting lists, about a third of the size.
	dedup := btreeSize(1_000_000, 10, 8192, 4)
	require.Less(t, dedup, got/2)
	require.Greater(t, dedup, int64(6_000_000), "at least the 6-byte heap pointers")
}
