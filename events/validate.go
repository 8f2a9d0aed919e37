package events

import (
	"fmt"
	"strings"
)

// MaxEventBytes is the largest envelope a consumer decodes. The Kafka
// producer refuses messages over 1,000,000 bytes, so a larger one never
// came from IndexPilot; on the memory bus it bounds what one event costs.
const MaxEventBytes = 1 << 20

// Read is the one decode path of every consumer: it decodes a message body
// strictly (Unmarshal), then its payload (Decode: known type, strict
// fields, the payload's Validate), and checks that the envelope agrees
// with the payload: its id is the payload's id recipe and its subject the
// payload's subject, as Wrap makes them. Any error is permanent: the same
// bytes never decode.
func Read(b []byte) (Envelope, Payload, error) {
	if len(b) > MaxEventBytes {
		return Envelope{}, nil, fmt.Errorf("decode envelope: %d bytes, over the %d-byte limit", len(b), MaxEventBytes)
	}
	env, err := Unmarshal(b)
	if err != nil {
		return Envelope{}, nil, err
	}
	p, err := Decode(env)
	if err != nil {
		return Envelope{}, nil, err
	}
	if id := p.EventID(); env.ID != id {
		return Envelope{}, nil, fmt.Errorf("decode %s: envelope id %q is not the payload's id %s", env.Type, clip(env.ID), id)
	}
	if s := p.EventSubject(); env.Subject != s {
		return Envelope{}, nil, fmt.Errorf("decode %s: envelope subject %q is not the payload's %q", env.Type, clip(env.Subject), clip(s))
	}
	return env, p, nil
}

// clip shortens a value quoted in an error, which may be hostile.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// errMissing names required fields that are empty.
func errMissing(t Type, fields ...string) error {
	return fmt.Errorf("invalid %s: missing %s", t, strings.Join(fields, ", "))
}

// required returns an error naming the empty ones of name/value pairs.
func required(t Type, pairs ...string) error {
	var missing []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			missing = append(missing, pairs[i])
		}
	}
	if len(missing) > 0 {
		return errMissing(t, missing...)
	}
	return nil
}

func oneOf(t Type, field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("invalid %s: %s %q is not one of %s", t, field, clip(v), strings.Join(allowed, ", "))
}

// Validate checks what every consumer of the type relies on: the fields
// that key its rows and its closed sets. A payload that fails can never
// be processed (Decode rejects it). Domain judgement (is the index
// definition acceptable?) stays with the consumer.
func (p *QueryStatObserved) Validate() error {
	if err := required(TypeQueryStatObserved, "target", p.Target, "query_id", p.QueryID); err != nil {
		return err
	}
	if p.WindowEnd.IsZero() {
		return errMissing(TypeQueryStatObserved, "window_end")
	}
	return oneOf(TypeQueryStatObserved, "window_source", p.WindowSource,
		WindowDelta, WindowHistoryStatsSince, WindowHistoryStatsReset, WindowHistoryUnknown, WindowActivity)
}

// Validate: see QueryStatObserved.Validate.
func (p *TableStatObserved) Validate() error {
	if err := required(TypeTableStatObserved, "target", p.Target, "schema", p.Schema, "table", p.Table); err != nil {
		return err
	}
	if p.ObservedAt.IsZero() {
		return errMissing(TypeTableStatObserved, "observed_at")
	}
	for i, ix := range p.Indexes {
		if ix.Name == "" {
			return errMissing(TypeTableStatObserved, fmt.Sprintf("indexes[%d].name", i))
		}
	}
	if p.ServerXactNext != nil && *p.ServerXactNext < 0 {
		return fmt.Errorf("invalid %s: server_xact_next %d is negative", TypeTableStatObserved, *p.ServerXactNext)
	}
	return nil
}

// Validate: see QueryStatObserved.Validate.
func (p *AppStatObserved) Validate() error {
	return required(TypeAppStatObserved, "target", p.Target, "row_id", p.RowID, "table", p.Table)
}

// Validate: see QueryStatObserved.Validate.
func (p *IndexCandidateScored) Validate() error {
	return required(TypeIndexCandidateScored, "target", p.Target, "candidate_id", p.CandidateID,
		"index.schema", p.Index.Schema, "index.table", p.Index.Table)
}

// Validate: see QueryStatObserved.Validate.
func (p *IndexDecisionMade) Validate() error {
	if err := required(TypeIndexDecisionMade, "target", p.Target, "recommendation_id", p.RecommendationID,
		"index.schema", p.Index.Schema, "index.table", p.Index.Table); err != nil {
		return err
	}
	return oneOf(TypeIndexDecisionMade, "verdict", string(p.Verdict), string(VerdictAdvised), string(VerdictApproved),
		string(VerdictRejected), string(VerdictDeferred), string(VerdictHeld))
}

// Validate: see QueryStatObserved.Validate.
func (p *IndexBuildCompleted) Validate() error {
	return required(TypeIndexBuildCompleted, "target", p.Target, "recommendation_id", p.RecommendationID, "index_name", p.IndexName)
}

// Validate: see QueryStatObserved.Validate.
func (p *IndexBuildFailed) Validate() error {
	return required(TypeIndexBuildFailed, "target", p.Target, "recommendation_id", p.RecommendationID, "index_name", p.IndexName)
}

// Validate: see QueryStatObserved.Validate.
func (p *IndexRemovalProposed) Validate() error {
	if err := required(TypeIndexRemovalProposed, "target", p.Target, "removal_id", p.RemovalID,
		"schema", p.Schema, "index_name", p.IndexName); err != nil {
		return err
	}
	return oneOf(TypeIndexRemovalProposed, "reason", string(p.Reason),
		string(RemovalUnused), string(RemovalDuplicate), string(RemovalPrefix), string(RemovalInvalid))
}

// Validate: see QueryStatObserved.Validate.
func (p *BypassChanged) Validate() error {
	if err := required(TypeBypassChanged, "change_id", p.ChangeID); err != nil {
		return err
	}
	return oneOf(TypeBypassChanged, "level", p.Level, "feature", "stage", "system", "startup", "emergency")
}

// Validate: see QueryStatObserved.Validate.
func (p *IndexValidationCompleted) Validate() error {
	if err := required(TypeIndexValidationCompleted, "target", p.Target, "recommendation_id", p.RecommendationID,
		"index_name", p.IndexName); err != nil {
		return err
	}
	return oneOf(TypeIndexValidationCompleted, "verdict", p.Verdict, VerdictImproved, VerdictNoChange, VerdictRegressed)
}

// Validate: see QueryStatObserved.Validate.
func (p *IndexRemovalCompleted) Validate() error {
	return required(TypeIndexRemovalCompleted, "target", p.Target, "removal_id", p.RemovalID,
		"schema", p.Schema, "index_name", p.IndexName)
}
