package whatif

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAnalyzeRewritesTypedLiteralsOnTheTree(t *testing.T) {
	sh, err := AnalyzeStatement(`select l_returnflag, sum(l_quantity) from lineitem
	 where l_shipdate <= date $1 - interval $2 day and l_commitdate > timestamp $3 and l_receiptdate < date $4 + interval $5 month
	 group by l_returnflag`)
	require.NoError(t, err)
	require.True(t, sh.Rewritten)
	require.Contains(t, sh.Text, "$1::date")
	require.Contains(t, sh.Text, "$2::interval day")
	require.Contains(t, sh.Text, "$3::timestamp")
	require.Contains(t, sh.Text, "$5::interval month")
	require.NotContains(t, sh.Text, "date $1")
	require.Equal(t, 5, sh.Params)
	require.Equal(t, map[int]string{2: "day", 5: "month"}, sh.Units)
	// $1 bounds l_shipdate (the subtracted $2 is a shift); $4 and $5 are
	// both operands of the sum bounding l_receiptdate.
	require.Equal(t, []ParamUse{{Relations: []string{`"lineitem"`}, Column: "l_shipdate", Op: "<="}}, sh.Uses[1])
	require.Empty(t, sh.Uses[2])
	require.Equal(t, ">", sh.Uses[3][0].Op)
	require.Equal(t, "l_receiptdate", sh.Uses[4][0].Column)

	// The bound value of an interval literal carries the literal's unit.
	require.Equal(t, "90 day", sh.bindValue(2, "90"))
	require.Equal(t, "3 month", sh.bindValue(5, " 3 "))
	require.Equal(t, "1 year", sh.bindValue(5, "1 year"))
	require.Equal(t, "1995-01-01", sh.bindValue(1, "1995-01-01"))
}

func TestAnalyzeLeavesPlainStatementsAlone(t *testing.T) {
	q := "select * from public.t x join u on u.id = x.uid where x.a = $1 and $2 < x.b and u.c in ($3, $4) and x.d between $5 and $6 order by x.b limit $7 offset $8"
	sh, err := AnalyzeStatement(q)
	require.NoError(t, err)
	require.False(t, sh.Rewritten)
	require.Equal(t, q, sh.Text)
	require.Equal(t, 8, sh.Params)
	want := map[int]ParamUse{
		1: {Relations: []string{`"public"."t"`}, Column: "a", Op: "="},
		2: {Relations: []string{`"public"."t"`}, Column: "b", Op: ">"},
		3: {Relations: []string{`"u"`}, Column: "c", Op: "="},
		4: {Relations: []string{`"u"`}, Column: "c", Op: "="},
		5: {Relations: []string{`"public"."t"`}, Column: "d", Op: ">="},
		6: {Relations: []string{`"public"."t"`}, Column: "d", Op: "<="},
		7: {Op: "limit"},
		8: {Op: "offset"},
	}
	for n, u := range want {
		require.Equal(t, []ParamUse{u}, sh.Uses[n], "$%d", n)
	}
}

func TestAnalyzeSquashedInList(t *testing.T) {
	// PostgreSQL 18 normalizes IN (1, 2, 3) to IN ($1 /*, ... */).
	sh, err := AnalyzeStatement("select * from t where a in ($1 /*, ... */) and b = $2")
	require.NoError(t, err)
	require.Equal(t, 2, sh.Params)
	require.Equal(t, "a", sh.Uses[1][0].Column)
	require.Equal(t, "=", sh.Uses[1][0].Op)
}

func TestConstValue(t *testing.T) {
	for in, want := range map[string]string{
		"'x1%'::text": "x1%", "3::integer": "3", "'it''s'::text": "it's",
		"'2009-10-03 00:00:00'::timestamp without time zone": "2009-10-03 00:00:00",
	} {
		got, ok := constValue(in)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"'{x1,x2}'::text[]", "'abc", "42"} {
		_, ok := constValue(in)
		require.False(t, ok, in)
	}
}

func TestBuildSetsWeightsSumToOne(t *testing.T) {
	sh := &Shape{Params: 3, Units: map[int]string{}, Uses: map[int][]ParamUse{3: {{Op: opLimit}}}}
	method, sets := buildSets(sh, []source{
		{method: MethodQualstats, values: map[int][]weighted{1: {{value: "a", weight: 3}, {value: "b", weight: 1}}}},
		{method: MethodPgStats, values: map[int][]weighted{1: {{value: "z", weight: 1}}, 2: {{value: "10", weight: 1}, {value: "20", weight: 1}, {value: "30", weight: 1}}}},
	}, 42.3)
	require.Equal(t, MethodQualstats, method)
	require.Len(t, sets, 3)
	var sum float64
	for _, s := range sets {
		sum += s.Weight
		require.Equal(t, "43", *s.Values[2])
	}
	require.InDelta(t, 1, sum, 1e-9)
	require.Equal(t, "a", *sets[0].Values[0])
	require.Equal(t, "b", *sets[1].Values[0])
	require.Equal(t, "a", *sets[2].Values[0], "shorter lists cycle")
	require.Equal(t, "30", *sets[2].Values[1])

	method, sets = buildSets(sh, nil, 0)
	require.Equal(t, MethodGeneric, method)
	require.Empty(t, sets)
}

func TestAnalyzeShiftsExtractAndTypeGuesses(t *testing.T) {
	sh, err := AnalyzeStatement("select extract($1 from d), sum(case when s = $2 then $3 else $4 end) from t where x between $5 - $6 and $7 + $8 and d < date $9 + interval $10 day")
	require.NoError(t, err)
	require.True(t, sh.Rewritten)
	require.Contains(t, sh.Text, `pg_catalog."extract"($1, d)`, "EXTRACT with a parameter field becomes a plain call")
	require.Equal(t, map[int]bool{6: true, 8: true, 10: true}, sh.Shifts)
	require.Equal(t, ">=", sh.Uses[5][0].Op)
	require.Equal(t, "<=", sh.Uses[7][0].Op)
	require.Empty(t, sh.Uses[6])
	// $1 (extract's field), $3, $4 (CASE results) and the arithmetic
	// operands $5..$8 are typed numeric on a second attempt; $2 is
	// compared with s, $9 and $10 are under casts.
	oids := sh.guessTypes()
	require.Equal(t, []uint32{1700, 0, 1700, 1700, 1700, 1700, 1700, 1700, 0, 0}, oids)
}

func TestStatsValuesFoldEqualFrequencies(t *testing.T) {
	sh := &Shape{Params: 2, Uses: map[int][]ParamUse{
		1: {{Relations: []string{"t"}, Column: "a", Op: "="}},
		2: {{Relations: []string{"t"}, Column: "b", Op: "="}},
	}}
	stats := map[string]*colStats{
		// Uniform: ten values of 10 % each, one set.
		"a": {mcv: []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10"}, freqs: []float64{.1, .1, .1, .1, .1, .1, .1, .1, .1, .1}},
		// Skewed: 0 is 90 %, then two rare values of 2 % and the rest.
		"b": {mcv: []string{"0", "7", "8"}, freqs: []float64{.9, .02, .02}, histogram: []string{"10", "20", "30"}},
	}
	vals := statsValues(sh, func(_, col string) *colStats { return stats[col] })
	require.Len(t, vals[1], 1)
	require.InDelta(t, 1.0, vals[1][0].weight, 1e-9)
	require.Equal(t, []string{"0", "7", "20"}, []string{vals[2][0].value, vals[2][1].value, vals[2][2].value})
	require.InDelta(t, 0.04, vals[2][1].weight, 1e-9)
	require.InDelta(t, 0.06, vals[2][2].weight, 1e-9)

	_, sets := buildSets(&Shape{Params: 1, Uses: sh.Uses}, []source{{method: MethodObserved,
		values: map[int][]weighted{1: {{value: "x", weight: 1}}}}}, 0)
	require.Len(t, sets, 1)
}
