package scorer_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/services/scorer"
)

func TestParseOffsets(t *testing.T) {
	for in, want := range map[string]scorer.Offsets{
		"0":     {Partition: -1, From: 0},
		"1234":  {Partition: -1, From: 1234},
		"2:15":  {Partition: 2, From: 15},
		"0:0":   {Partition: 0, From: 0},
		"00:07": {Partition: 0, From: 7},
	} {
		got, ok, err := scorer.ParseOffsets(in)
		require.NoError(t, err, in)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "72h", "2026-11-01T00:00:00Z", "-1", "1:-1", "a:1", ":5", "5:", "1:2:3", " 1"} {
		_, ok, err := scorer.ParseOffsets(in)
		require.False(t, ok, in)
		require.NoError(t, err, in)
	}
	for _, in := range []string{"99999999999999999999", "99999999999:1"} {
		_, ok, err := scorer.ParseOffsets(in)
		require.True(t, ok, in)
		require.Error(t, err, in)
	}
}
