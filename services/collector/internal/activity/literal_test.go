package activity

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLiteral(t *testing.T) {
	for _, c := range []struct {
		in, want string
		values   []string
	}{
		{"select * from big where k = 42 and note = 'it''s'", "select * from big where k = $1 and note = $2", []string{"42", "it's"}},
		{"SELECT id FROM t WHERE a > -5 AND b < 2.5 LIMIT 10", "SELECT id FROM t WHERE a > $1 AND b < $2 LIMIT $3", []string{"-5", "2.5", "10"}},
		{"select count(*) from lineitem where l_shipdate <= date '1998-12-01' - interval '90' day",
			"select count(*) from lineitem where l_shipdate <= date $1 - interval $2 day", []string{"1998-12-01", "90"}},
		{"select x::varchar(10) from t where flag = true", "select x::varchar(10) from t where flag = $1", []string{"true"}},
		{"select 1", "select $1", []string{"1"}},
		{"select * from t", "select * from t", nil},
	} {
		got, values, ok := Literal(c.in)
		require.True(t, ok, c.in)
		require.Equal(t, c.want, got, c.in)
		require.Equal(t, c.values, values, c.in)
	}
	for _, in := range []string{
		"select * from t where a = $1",                // extended protocol: already normalized
		"select * from t where a is null or a = null", // NULL cannot be a text parameter
		"select * from",                               // does not parse
		"select 1; select 2",                          // two statements
	} {
		_, _, ok := Literal(in)
		require.False(t, ok, in)
	}
}
