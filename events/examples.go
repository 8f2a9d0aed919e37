package events

import "time"

// Examples returns one realistic payload of every live type. The golden
// fixtures in testdata/ are their canonical encodings, and events/README.md
// shows them.
func Examples() []Payload {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	statsReset := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	exampleTenant, exampleField := "tenant-42", "email"
	exampleNewPage := int64(12)
	exampleXactNext := int64(7340512)
	spec := IndexSpec{Schema: "public", Table: "contacts", Method: "btree", Columns: []string{"tenant_id", "email"}}
	cand := CandidateID("main", spec, "v1")
	candEvent := &IndexCandidateScored{
		Target: "main", CandidateID: cand, Index: spec, FormulaVersion: "v1", WhatIfMethod: "hypopg",
		WindowEnd: at, MaxImprovementPct: 97.4, EstimatedSizeBytes: 1417216,
		Statements: []StatementEvidence{{
			QueryID: "-3021477395845733318", Query: "SELECT * FROM contacts WHERE tenant_id = $1 AND email = $2",
			Calls: 1200, MeanExecTimeMs: 4.21, CostBefore: 1887.5, CostAfter: 8.3, ImprovementPct: 99.56,
		}},
	}
	decision := &IndexDecisionMade{
		Target: "main", RecommendationID: RecommendationID("main", spec), CandidateID: cand,
		CandidateEventID: candEvent.EventID(), Index: spec, Verdict: VerdictApproved, Reason: ReasonApplyMode,
		QueryIDs: []string{"-3021477395845733318"}, DecidedAt: at.Add(time.Second),
	}
	return []Payload{
		&QueryStatObserved{
			Target: "main", QueryID: "-3021477395845733318",
			Query:       "SELECT * FROM contacts WHERE tenant_id = $1 AND email = $2",
			WindowStart: at.Add(-30 * time.Second), WindowEnd: at,
			Calls: 1200, TotalExecTimeMs: 5052, MeanExecTimeMs: 4.21, Rows: 1200, SharedBlksHit: 480000, SharedBlksRead: 12,
		},
		&TableStatObserved{
			Target: "main", Schema: "public", Table: "contacts", ObservedAt: at,
			TableSizeBytes: 5201920, TotalSizeBytes: 6381568, LiveRows: 40000, AvgRowWidthBytes: 112,
			SeqScans: 1250, IdxScans: 3, Inserts: 40000, Updates: 120, HotUpdates: 100, Deletes: 0,
			Indexes: []IndexStat{{
				Name: "contacts_pkey", Definition: "CREATE UNIQUE INDEX contacts_pkey ON public.contacts USING btree (id)",
				Scans: 3, SizeBytes: 917504, Valid: true, Primary: true, Unique: true,
				TuplesRead: 3, TuplesFetched: 3, Constraint: true, ReplicaIdentity: true,
			}},
			StatsResetAt: &statsReset, NewPageUpdates: &exampleNewPage, ServerXactNext: &exampleXactNext,
		},
		&AppStatObserved{
			Target: "main", RowID: "81920", TenantID: &exampleTenant, Table: "contacts", Field: &exampleField,
			QueryType: "select", DurationMs: 3.2, RecordedAt: at.Add(-2 * time.Second),
		},
		candEvent,
		decision,
		&IndexBuildCompleted{
			Target: "main", RecommendationID: decision.RecommendationID, CandidateID: cand, DecisionEventID: decision.EventID(),
			Index: spec, IndexName: "ip_contacts_tenant_id_email_3f9a1c2e",
			DDL:        `CREATE INDEX CONCURRENTLY "ip_contacts_tenant_id_email_3f9a1c2e" ON "public"."contacts" USING btree ("tenant_id", "email")`,
			DurationMs: 412.5, SizeBytes: 1204224, CompletedAt: at.Add(2 * time.Second),
		},
		&IndexBuildFailed{
			Target: "main", RecommendationID: decision.RecommendationID, CandidateID: cand, DecisionEventID: decision.EventID(),
			Index: spec, IndexName: "ip_contacts_tenant_id_email_3f9a1c2e",
			Error: "create index: canceling statement due to lock timeout", SQLState: "55P03",
			Permanent: false, Attempt: 3, FailedAt: at.Add(20 * time.Second),
		},
		&IndexRemovalProposed{
			Target: "main", RemovalID: RemovalID("main", "public", "contacts_email_idx",
				"CREATE INDEX contacts_email_idx ON public.contacts USING btree (email)"),
			Schema: "public", Table: "contacts", IndexName: "contacts_email_idx",
			Definition: "CREATE INDEX contacts_email_idx ON public.contacts USING btree (email)",
			Index:      IndexSpec{Schema: "public", Table: "contacts", Method: "btree", Columns: []string{"email"}},
			Reason:     RemovalPrefix, RedundantWith: "contacts_email_name_idx", SizeBytes: 917504, Scans: 12,
			FormulaVersion: "v2", ObservedAt: at,
		},
		&BypassChanged{
			ChangeID: "7", Level: "emergency", Name: "", Disabled: true, Reason: "incident 4711: replica lag",
			Actor: "alice@ops-host", ChangedAt: at.Add(time.Minute), ExpiresAt: func() *time.Time { t := at.Add(31 * time.Minute); return &t }(),
		},
		&IndexValidationCompleted{
			Target: "main", RecommendationID: decision.RecommendationID, Index: spec,
			IndexName: "ip_contacts_tenant_id_email_3f9a1c2e", BuiltAt: at.Add(2 * time.Second),
			Verdict: VerdictRegressed, ChangePct: -18.5, PlanUsesIndex: func() *bool { b := true; return &b }(), Reverted: true,
			Statements: []ValidatedStatement{{QueryID: "-3021477395845733318", BeforeCalls: 1200, BeforeMeanMs: 4.21,
				AfterCalls: 1310, AfterMeanMs: 4.99, PlanUsesIndex: func() *bool { b := true; return &b }()}},
			ValidatedAt: at.Add(time.Hour),
		},
		&IndexRemovalCompleted{
			Target: "main", RemovalID: RemovalID("main", "public", "contacts_email_idx",
				"CREATE INDEX contacts_email_idx ON public.contacts USING btree (email)"),
			Schema: "public", Table: "contacts", IndexName: "contacts_email_idx",
			Definition: "CREATE INDEX contacts_email_idx ON public.contacts USING btree (email)",
			DDL:        `DROP INDEX CONCURRENTLY IF EXISTS "public"."contacts_email_idx"`, DroppedAt: at.Add(2 * time.Hour),
		},
	}
}
