// Package appstats sets up and tears down, in a target database, what the
// collector needs to read the statistics applications report themselves:
// the indexpilot.query_stats table and a publication on it. The CLI's
// `init --target` and `uninstall --target` use it.
package appstats

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Publication is the publication on indexpilot.query_stats, one per target
// database. It publishes inserts only, so the application's own UPDATEs
// and DELETEs of the table (for retention) never need a replica identity.
const Publication = "indexpilot_query_stats"

var marker = postgres.Marker("collector")

// tableSQL is the app-fed table, the same shape as the control schema's.
const tableSQL = `create schema if not exists indexpilot;
create table if not exists indexpilot.query_stats (
    id          bigserial primary key,
    recorded_at timestamptz not null default now(),
    tenant_id   text,
    table_name  text not null,
    field_name  text,
    query_type  text not null,
    duration_ms double precision not null check (duration_ms >= 0)
)`

// Install creates indexpilot.query_stats and its publication in the
// database q is connected to. It is idempotent and touches nothing else.
// It reports whether wal_level is logical (when not, the collector polls
// the table instead of streaming it).
func Install(ctx context.Context, q postgres.Querier) (logical bool, err error) {
	if _, err := q.Exec(ctx, marker+tableSQL); err != nil {
		return false, fmt.Errorf("create indexpilot.query_stats: %w", err)
	}
	var exists bool
	if err := q.QueryRow(ctx, marker+"select exists(select 1 from pg_publication where pubname = $1)", Publication).Scan(&exists); err != nil {
		return false, fmt.Errorf("look up publication: %w", err)
	}
	if !exists {
		if _, err := q.Exec(ctx, marker+"create publication "+postgres.Ident(Publication)+
			" for table indexpilot.query_stats with (publish = 'insert')"); err != nil {
			return false, fmt.Errorf("create publication: %w", err)
		}
	}
	return WALIsLogical(ctx, q)
}

// WALIsLogical reports whether the server's wal_level is logical.
func WALIsLogical(ctx context.Context, q postgres.Querier) (bool, error) {
	var level string
	if err := q.QueryRow(ctx, marker+"select current_setting('wal_level')").Scan(&level); err != nil {
		return false, fmt.Errorf("read wal_level: %w", err)
	}
	return level == "logical", nil
}

// SlotName is the replication slot of target in database db. Slots are
// cluster-wide, so the name carries a hash of both: two targets on one
// server never share one. It is at most 63 bytes of [a-z0-9_].
func SlotName(target, db string) string {
	sum := sha256.Sum256([]byte(target + "|" + db))
	clean := strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' {
			return r
		}
		return '_'
	}, strings.ToLower(target))
	if len(clean) > 40 {
		clean = clean[:40]
	}
	return "indexpilot_" + clean + "_" + hex.EncodeToString(sum[:4])
}

// Uninstall drops target's replication slot and the publication in the
// database q is connected to, so that no slot is left to hold WAL. The
// table and its rows stay. A slot still in use by a running collector is
// an error: remove the target from the configuration (and reload) first.
// It returns whether a slot was dropped.
func Uninstall(ctx context.Context, q postgres.Querier, target string) (bool, error) {
	var db string
	if err := q.QueryRow(ctx, marker+"select current_database()").Scan(&db); err != nil {
		return false, fmt.Errorf("read database name: %w", err)
	}
	dropped, err := DropSlot(ctx, q, SlotName(target, db))
	if err != nil {
		return false, err
	}
	if _, err := q.Exec(ctx, marker+"drop publication if exists "+postgres.Ident(Publication)); err != nil {
		return dropped, fmt.Errorf("drop publication: %w", err)
	}
	return dropped, nil
}

// DropSlot drops a replication slot if it exists and reports whether it
// did. A slot in use is an error.
func DropSlot(ctx context.Context, q postgres.Querier, slot string) (bool, error) {
	var active *bool
	err := q.QueryRow(ctx, marker+"select (select active from pg_replication_slots where slot_name = $1)", slot).Scan(&active)
	if err != nil {
		return false, fmt.Errorf("look up slot %s: %w", slot, err)
	}
	if active == nil {
		return false, nil
	}
	if *active {
		return false, fmt.Errorf("drop slot %s: it is in use by a running collector", slot)
	}
	if _, err := q.Exec(ctx, marker+"select pg_drop_replication_slot($1)", slot); err != nil {
		return false, fmt.Errorf("drop slot %s: %w", slot, err)
	}
	return true, nil
}
