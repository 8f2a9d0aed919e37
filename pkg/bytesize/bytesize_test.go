package bytesize_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/bytesize"
)

func TestHuman(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1 KiB"},
		{8192, "8 KiB"},
		{1<<20 - 1, "1024 KiB"},
		{1 << 20, "1.0 MiB"},
		{4505600, "4.3 MiB"},
		{5 << 30, "5.0 GiB"},
		{-1, "-1 B"},
	} {
		require.Equal(t, c.want, bytesize.Human(c.n), "Human(%d)", c.n)
	}
}
