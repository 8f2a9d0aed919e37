package executor

import (
	"context"

	"github.com/indexpilot/indexpilot/pkg/stage"
)

// RecoverApproved runs one pass of an executor's recovery of approvals
// without a build (recover.go) on d, as a fresh executor would at start.
func RecoverApproved(ctx context.Context, d stage.Deps) (int, error) {
	x, err := newExecutor(d, Options{})
	if err != nil {
		return 0, err
	}
	return x.recoverApproved(ctx)
}
