package events

import "time"

// TypeAppStatObserved is one row an application reported in a target's
// indexpilot.query_stats table.
const TypeAppStatObserved Type = "appstat.observed.v1"

// AppStatObserved is one query an application reported itself, tenant by
// tenant, through indexpilot.query_stats in a target database (written by
// pkg/statsclient, streamed by the collector over logical replication or
// polled with a watermark). It says what pg_stat_statements cannot: which
// tenant ran it and which field it filtered on.
//
// Id recipe: "appstat", target, row_id, recorded_at. The same row gives the
// same id whichever way it was read and however often it is redelivered.
type AppStatObserved struct {
	Target string `json:"target"`
	// RowID is the row's query_stats.id, in decimal.
	RowID string `json:"row_id"`
	// TenantID is null for a query not scoped to a tenant.
	TenantID *string `json:"tenant_id"`
	Table    string  `json:"table"`
	// Field is the column the query filtered on; null when not reported.
	Field      *string   `json:"field"`
	QueryType  string    `json:"query_type"`
	DurationMs float64   `json:"duration_ms"`
	RecordedAt time.Time `json:"recorded_at"`
}

func (*AppStatObserved) EventType() Type { return TypeAppStatObserved }
func (p *AppStatObserved) EventID() string {
	return DeterministicID("appstat", p.Target, p.RowID, stamp(p.RecordedAt))
}
func (p *AppStatObserved) EventSubject() string { return p.Target }
