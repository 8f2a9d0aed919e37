package decisions

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/indexpilot/indexpilot/events"
)

// TestNextStep: a held recommendation names the approval and the setting
// that held it; one the scorer rejected for its charges says nothing is
// needed; an operator's or a gatekeeper rule's rejection, and every other
// state, get none.
func TestNextStep(t *testing.T) {
	const id = "9f36b406-9336-5349-b39c-fdef26eb2fd7"
	scorerRejected := events.IndexCandidateScored{RejectedReason: string(events.ReasonWriteOverhead)}
	for _, c := range []struct {
		state, reason string
		evidence      events.IndexCandidateScored
		want          string
	}{
		{"held", "storage_budget", events.IndexCandidateScored{}, "approve it anyway (indexpilot approve 9f36b406, or Approve on its dashboard page), " +
			"or raise the storage budget (scorer.storage_budget_mb, or scorer.storage_budget_pct of the database with its floor " +
			"scorer.storage_budget_min_mb) for a later scoring run to choose it"},
		{"held", "max_indexes_per_table", events.IndexCandidateScored{}, "approve it anyway (indexpilot approve 9f36b406, or Approve on its dashboard page), " +
			"or raise scorer.max_indexes_per_table for a later scoring run to choose it"},
		{"held", "max_new_indexes", events.IndexCandidateScored{}, "approve it anyway (indexpilot approve 9f36b406, or Approve on its dashboard page), " +
			"or raise scorer.max_new_indexes for a later scoring run to choose it"},
		{"rejected", "write_overhead_exceeded", scorerRejected, "nothing to do: while its statements stay in the workload the scorer " +
			"prices it again every run, and a run in which its read saving outweighs its charges reopens it"},
		// The gatekeeper's write limit uses the same reason; the scorer's
		// evidence did not reject it.
		{"rejected", "write_overhead_exceeded", events.IndexCandidateScored{}, ""},
		{"rejected", "operator_rejected", scorerRejected, ""},
		{"proposed", "advisory_mode", events.IndexCandidateScored{}, ""},
		{"deferred", "operator_approved", events.IndexCandidateScored{HeldReason: "storage_budget"}, ""},
	} {
		got := NextStep(Recommendation{ID: id, State: c.state, Reason: c.reason, Evidence: c.evidence})
		require.Equal(t, c.want, got, "state %s, reason %s", c.state, c.reason)
	}
}
