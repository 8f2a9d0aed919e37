package events

import "time"

// RemovalReason says why the scorer proposes dropping an index. It is a
// closed set: a consumer may switch on it.
type RemovalReason string

// Removal reasons.
const (
	// RemovalUnused: no scan for the whole retention period, counted from
	// the later of the index's first sighting and the last statistics
	// reset (a reset makes the scan counter go back, which restarts the
	// period).
	RemovalUnused RemovalReason = "unused"
	// RemovalDuplicate: another valid index has the same method, key
	// columns in the same order and predicate (RedundantWith names it).
	RemovalDuplicate RemovalReason = "duplicate"
	// RemovalPrefix: the key columns are a left prefix of another valid
	// btree index's with the same predicate (RedundantWith names it).
	RemovalPrefix RemovalReason = "prefix_redundant"
	// RemovalInvalid: an INVALID index that no CREATE INDEX is building.
	RemovalInvalid RemovalReason = "invalid"
)

// IndexRemovalProposed is an index the scorer proposes to drop, with the
// evidence for it. It is only a proposal: the gatekeeper decides (removal
// has its own mode, advisory by default). Primary keys, unique, exclusion,
// constraint-backing and replica-identity indexes are never proposed.
//
// RemovalID recipe: "removal", target, schema, index_name, definition.
// Id recipe: "removal_proposed", removal_id, reason, formula_version. The
// same proposal made again at a later observation is the same event, so a
// consumer that deduplicates on the id records it once.
type IndexRemovalProposed struct {
	Target    string `json:"target"`
	RemovalID string `json:"removal_id"`
	Schema    string `json:"schema"`
	Table     string `json:"table"`
	IndexName string `json:"index_name"`
	// Definition is pg_get_indexdef of the index, kept so that a dropped
	// index can be recreated exactly.
	Definition string `json:"definition"`
	// Index is the parsed definition (an expression key is "").
	Index  IndexSpec     `json:"index"`
	Reason RemovalReason `json:"reason"`
	// RedundantWith names the index that makes this one a duplicate or a
	// prefix; "" for the other reasons.
	RedundantWith string `json:"redundant_with,omitempty"`
	SizeBytes     int64  `json:"size_bytes"`
	Scans         int64  `json:"scans"`
	// UnusedSince is when the scan counter last changed (or the index was
	// first seen); set for RemovalUnused.
	UnusedSince *time.Time `json:"unused_since,omitempty"`
	// CreatedByIndexPilot is true for indexes named with the ip_ prefix.
	CreatedByIndexPilot bool   `json:"created_by_indexpilot"`
	FormulaVersion      string `json:"formula_version"`
	// ObservedAt is the latest table statistics observation the proposal
	// rests on (informational: not part of the id).
	ObservedAt time.Time `json:"observed_at"`
}

// RemovalID is the deterministic id of the proposal to drop one index
// definition on one target.
func RemovalID(target, schema, indexName, definition string) string {
	return DeterministicID("removal", target, schema, indexName, definition)
}

func (*IndexRemovalProposed) EventType() Type { return TypeIndexRemovalProposed }
func (p *IndexRemovalProposed) EventID() string {
	return DeterministicID("removal_proposed", p.RemovalID, string(p.Reason), p.FormulaVersion)
}
func (p *IndexRemovalProposed) EventSubject() string { return p.Target }
