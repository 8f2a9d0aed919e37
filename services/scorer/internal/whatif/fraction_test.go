package whatif

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/indexdef"
)

func TestConditionFraction(t *testing.T) {
	t.Parallel()
	vals, freqs := []string{"f", "t"}, []float64{0.7, 0.2}
	require.InDelta(t, 0.1, conditionFraction(indexdef.TestIsNull, 0.1, vals, freqs), 1e-9)
	require.InDelta(t, 0.9, conditionFraction(indexdef.TestIsNotNull, 0.1, vals, freqs), 1e-9)
	require.InDelta(t, 0.2, conditionFraction(indexdef.TestTrue, 0.1, vals, freqs), 1e-9)
	require.InDelta(t, 0.7, conditionFraction(indexdef.TestIsFalse, 0.1, vals, freqs), 1e-9)
	// Only one value common: the other is the rest of the non-null rows.
	require.InDelta(t, 0.05, conditionFraction(indexdef.TestFalse, 0.0, []string{"t"}, []float64{0.95}), 1e-9)
	// No common values: half of the non-null rows.
	require.InDelta(t, 0.4, conditionFraction(indexdef.TestIsTrue, 0.2, nil, nil), 1e-9)
	require.Equal(t, 1.0, conditionFraction("other", 0.5, nil, nil))
}
