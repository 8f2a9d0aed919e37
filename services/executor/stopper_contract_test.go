package executor_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/services/executor"
)

// The run-time bypass is the executor's emergency stop: its state plugs
// into the Stopper seam as is.
var _ executor.Stopper = (*bypass.State)(nil)

func TestNoStopAndBypassStateDefaultToRunning(t *testing.T) {
	stop, why := executor.NoStop{}.Stopped()
	require.False(t, stop)
	require.Empty(t, why)
	stop, _ = bypass.NewState(config.Default().Features.Bypass, time.Now).Stopped()
	require.False(t, stop)
}
