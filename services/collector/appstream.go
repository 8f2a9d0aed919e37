package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/pkg/stage"
	"github.com/indexpilot/indexpilot/services/collector/appstats"
)

// App-stats modes as recorded in the health table.
const (
	modeReplication  = "replication"
	modePoll         = "poll"
	modeOff          = "off"
	modeNotInstalled = "not installed"
	modeFailing      = "failing"
)

// standbyEvery is how often the stream reports its confirmed position even
// when nothing happens (wal_sender_timeout defaults to 60 s).
const standbyEvery = 10 * time.Second

// notInstalledRecheck is the least wait before a target without
// indexpilot.query_stats is looked at again.
const notInstalledRecheck = time.Minute

// lagEvery is how often the slot's lag is measured and recorded.
const lagEvery = 5 * time.Second

// streamHooks let tests stop the stream at exact points.
type streamHooks struct {
	// onInsert runs after the n-th row of the current transaction arrived.
	onInsert func(n int)
	// beforeConfirm runs after a transaction's events were published and
	// before its LSN is confirmed.
	beforeConfirm func()
}

// appStats reads one target's app-fed indexpilot.query_stats and publishes
// one events.AppStatObserved per row: streamed by logical replication
// (pgoutput, one named slot per target, the LSN confirmed only after the
// transaction's events are published), or polled with a watermark when
// wal_level is not logical.
type appStats struct {
	d        stage.Deps
	target   config.Target
	settings config.Collector
	conn     *targetConn
	health   *healthWriter
	log      *slog.Logger
	hooks    streamHooks

	// watermark is the polling position when there is no control
	// database; gaps tracks ids missing below a seen one (see pollOnce).
	watermark int64
	gaps      map[int64]time.Time
	// gate pauses reading while the bypass says so (nil: never).
	gate *gate
}

func newAppStats(d stage.Deps, t config.Target, settings config.Collector, conn *targetConn, h *healthWriter, log *slog.Logger) *appStats {
	return &appStats{d: d, target: t, settings: settings, conn: conn, health: h, log: log, gaps: map[int64]time.Time{}}
}

// plan is what decide found in the target.
type plan struct {
	mode string
	why  string
	db   string
}

// decide looks at the target and chooses how to read its app stats.
func (a *appStats) decide(ctx context.Context) (plan, error) {
	qctx, cancel := context.WithTimeout(ctx, a.settings.QueryTimeout)
	defer cancel()
	pool, _, err := a.conn.get(qctx)
	if err != nil {
		return plan{}, fmt.Errorf("open target: %w", err)
	}
	var (
		table, pub bool
		wal, db    string
	)
	err = pool.QueryRow(qctx, marker+`select to_regclass('indexpilot.query_stats') is not null, current_setting('wal_level'),
       exists(select 1 from pg_publication where pubname = $1), current_database()`, appstats.Publication).Scan(&table, &wal, &pub, &db)
	if err != nil {
		return plan{}, fmt.Errorf("probe app stats: %w", err)
	}
	p, err := choose(a.target, table, wal, pub)
	p.db = db
	return p, err
}

// choose is the decision of decide: from the target's app_stats setting
// and what the target has (the table, wal_level, the publication).
func choose(t config.Target, table bool, wal string, pub bool) (plan, error) {
	mode := t.AppStatsMode()
	switch {
	case !table:
		return plan{mode: modeNotInstalled, why: "indexpilot.query_stats does not exist (run indexpilot init --target " + t.Name + ")"}, nil
	case mode == config.AppStatsPoll:
		return plan{mode: modePoll, why: "app_stats: poll"}, nil
	case wal == "logical" && pub:
		return plan{mode: modeReplication, why: "streaming by logical replication"}, nil
	}
	why := "wal_level is " + wal + ", not logical: polling indexpilot.query_stats with a watermark instead of streaming it (set wal_level = logical and restart the server to stream)"
	if wal == "logical" {
		why = "publication " + appstats.Publication + " is missing (run indexpilot init --target " + t.Name + "): polling indexpilot.query_stats with a watermark instead of streaming it"
	}
	if mode == config.AppStatsReplication {
		return plan{}, errors.New("app_stats: replication is impossible: " + why)
	}
	return plan{mode: modePoll, why: why}, nil
}

// run reads the app stats until ctx ends. When removed reports true on the
// way out, the target's slot is dropped so that it holds no WAL.
func (a *appStats) run(ctx context.Context, removed func() bool) {
	if a.target.AppStatsMode() == config.AppStatsOff {
		a.health.appStats(a.target.Name, modeOff, "app_stats: off", nil)
		<-ctx.Done()
		return
	}
	var (
		failures int
		said     string
		lastDB   string
	)
	for ctx.Err() == nil {
		if !a.gate.wait(ctx, a.log, "app stats") {
			break
		}
		p, err := a.decide(ctx)
		if err == nil {
			lastDB = p.db
			if p.why != said {
				said = p.why
				if p.mode == modePoll && a.target.AppStatsMode() == config.AppStatsAuto {
					a.log.Warn("app stats: " + p.why)
				} else {
					a.log.Info("app stats: "+p.why, "mode", p.mode)
				}
			}
			switch p.mode {
			case modeReplication:
				// A pause closes the stream; unconfirmed transactions
				// are sent again when it reopens.
				sctx, cancel := a.gate.whileAllowed(ctx)
				err = a.stream(sctx, p.db)
				cancel()
				if paused, _ := a.gate.paused(); paused {
					err = nil
				}
			case modePoll:
				a.health.appStats(a.target.Name, modePoll, p.why, nil)
				err = a.pollOnce(ctx, p.db)
			default:
				a.health.appStats(a.target.Name, p.mode, p.why, nil)
			}
		}
		if ctx.Err() != nil {
			break
		}
		wait := a.settings.AppStatsPollInterval
		if err == nil && p.mode == modeNotInstalled {
			// Nothing to read: look again at most once a minute (or per
			// poll interval), so that targets without the table cost
			// their server's connection budget next to nothing.
			wait = max(a.settings.Interval, notInstalledRecheck)
		}
		if err != nil {
			failures++
			wait = backoff(a.settings.AppStatsPollInterval, failures)
			a.log.Warn("app stats failed", "error", err.Error(), "failures", failures, "retry_in", wait.String())
			a.health.appStats(a.target.Name, modeFailing, err.Error(), nil)
		} else {
			failures = 0
		}
		if !sleep(ctx, wait) {
			break
		}
	}
	if removed != nil && removed() && lastDB != "" {
		a.dropSlot(appstats.SlotName(a.target.Name, lastDB))
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// dropSlot drops the slot of a removed target, waiting for the walsender
// of the closed stream to let go of it.
func (a *appStats) dropSlot(slot string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, _, err := a.conn.get(ctx)
	if err != nil {
		a.log.Error("cannot drop the replication slot of a removed target: it holds WAL until dropped (indexpilot uninstall --target)", "slot", slot, "error", err.Error())
		return
	}
	for {
		dropped, err := appstats.DropSlot(ctx, pool, slot)
		if err == nil {
			if dropped {
				a.log.Info("dropped the replication slot of a removed target", "slot", slot)
			}
			return
		}
		if !sleep(ctx, 100*time.Millisecond) {
			a.log.Error("cannot drop the replication slot of a removed target: it holds WAL until dropped (indexpilot uninstall --target)", "slot", slot, "error", err.Error())
			return
		}
	}
}

// replConn opens a replication connection (replication=database) to the
// target.
func (a *appStats) replConn(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(a.target.DSN)
	if err != nil {
		return nil, errors.New("parse connection string: invalid format (details withheld, it may hold a password)")
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = "indexpilot-collector-stream"
	cctx, cancel := context.WithTimeout(ctx, a.settings.QueryTimeout)
	defer cancel()
	c, err := pgconn.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("replication connection: %s", postgres.Describe(err))
	}
	return c, nil
}

// stream runs one replication session until ctx ends or it breaks.
func (a *appStats) stream(ctx context.Context, db string) error {
	pool, _, err := a.conn.get(ctx)
	if err != nil {
		return fmt.Errorf("open target: %w", err)
	}
	rc, err := a.replConn(ctx)
	if err != nil {
		return err
	}
	defer rc.Close(context.Background())

	slot := appstats.SlotName(a.target.Name, db)
	var exists bool
	if err := pool.QueryRow(ctx, marker+"select exists(select 1 from pg_replication_slots where slot_name = $1)", slot).Scan(&exists); err != nil {
		return fmt.Errorf("look up slot: %w", err)
	}
	if !exists {
		if _, err := pglogrepl.CreateReplicationSlot(ctx, rc, slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication}); err != nil {
			return fmt.Errorf("create slot %s: %s", slot, postgres.Describe(err))
		}
		a.log.Info("created replication slot", "slot", slot)
	}
	err = pglogrepl.StartReplication(ctx, rc, slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + appstats.Publication + "'"},
	})
	if err != nil {
		return fmt.Errorf("start replication on slot %s: %s", slot, postgres.Describe(err))
	}
	s := &session{a: a, rc: rc, slot: slot, relations: map[uint32]*pglogrepl.RelationMessage{}, types: pgtype.NewMap()}
	a.health.appStats(a.target.Name, modeReplication, "slot "+slot, nil)
	err = s.loop(ctx)
	// Best effort: tell the server what is published, so that a restart
	// resends as little as possible.
	_ = s.sendStatus(context.Background())
	return err
}

// session is one replication stream.
type session struct {
	a         *appStats
	rc        *pgconn.PgConn
	slot      string
	relations map[uint32]*pglogrepl.RelationMessage
	types     *pgtype.Map

	// confirmed is the end LSN of the last transaction whose events are
	// all published: the only position ever reported to the server.
	confirmed pglogrepl.LSN
	inTxn     bool
	txn       []*events.AppStatObserved
}

func (s *session) sendStatus(ctx context.Context) error {
	if s.confirmed == 0 {
		return nil
	}
	return pglogrepl.SendStandbyStatusUpdate(ctx, s.rc, pglogrepl.StandbyStatusUpdate{WALWritePosition: s.confirmed})
}

func (s *session) loop(ctx context.Context) error {
	nextStatus := time.Now().Add(standbyEvery)
	nextLag := time.Now()
	for {
		if ctx.Err() != nil {
			return nil
		}
		if time.Now().After(nextLag) {
			s.recordLag(ctx)
			nextLag = time.Now().Add(lagEvery)
		}
		if time.Now().After(nextStatus) {
			if err := s.sendStatus(ctx); err != nil {
				return fmt.Errorf("send standby status: %s", postgres.Describe(err))
			}
			nextStatus = time.Now().Add(standbyEvery)
		}
		deadline := nextStatus
		if nextLag.Before(deadline) {
			deadline = nextLag
		}
		rctx, cancel := context.WithDeadline(ctx, deadline)
		raw, err := s.rc.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("receive replication message: %s", postgres.Describe(err))
		}
		switch m := raw.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication stream: %s (SQLSTATE %s)", m.Message, m.Code)
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				k, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return fmt.Errorf("parse keepalive: %w", err)
				}
				// Between transactions everything up to the server's
				// position has been published: confirming it lets the
				// slot release WAL written by other databases.
				if !s.inTxn && k.ServerWALEnd > s.confirmed {
					s.confirmed = k.ServerWALEnd
				}
				if k.ReplyRequested {
					nextStatus = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				x, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return fmt.Errorf("parse xlog data: %w", err)
				}
				if err := s.handle(ctx, x.WALData); err != nil {
					return err
				}
			}
		}
	}
}

// handle applies one pgoutput message.
func (s *session) handle(ctx context.Context, data []byte) error {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return fmt.Errorf("parse pgoutput message: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		s.relations[m.RelationID] = m
	case *pglogrepl.BeginMessage:
		s.inTxn = true
		s.txn = s.txn[:0]
	case *pglogrepl.InsertMessage:
		rel := s.relations[m.RelationID]
		if rel == nil || rel.Namespace != "indexpilot" || rel.RelationName != "query_stats" {
			return nil
		}
		ev, err := s.decode(rel, m.Tuple)
		if err != nil {
			return err
		}
		s.txn = append(s.txn, ev)
		if s.a.hooks.onInsert != nil {
			s.a.hooks.onInsert(len(s.txn))
		}
	case *pglogrepl.CommitMessage:
		if err := s.a.publish(ctx, s.txn); err != nil {
			return err
		}
		if s.a.hooks.beforeConfirm != nil && len(s.txn) > 0 {
			s.a.hooks.beforeConfirm()
			if ctx.Err() != nil {
				return nil
			}
		}
		s.inTxn = false
		s.txn = s.txn[:0]
		if m.TransactionEndLSN > s.confirmed {
			s.confirmed = m.TransactionEndLSN
		}
	}
	return nil
}

// decode turns an inserted query_stats row into its event.
func (s *session) decode(rel *pglogrepl.RelationMessage, tuple *pglogrepl.TupleData) (*events.AppStatObserved, error) {
	ev := &events.AppStatObserved{Target: s.a.target.Name}
	if tuple == nil {
		return nil, errors.New("decode query_stats row: no tuple")
	}
	for i, col := range tuple.Columns {
		if i >= len(rel.Columns) {
			break
		}
		if col.DataType != pglogrepl.TupleDataTypeText {
			continue // null (or unchanged TOAST, impossible on insert)
		}
		v := string(col.Data)
		switch rel.Columns[i].Name {
		case "id":
			ev.RowID = v
		case "recorded_at":
			var t time.Time
			if err := s.types.Scan(pgtype.TimestamptzOID, pgtype.TextFormatCode, col.Data, &t); err != nil {
				return nil, fmt.Errorf("decode query_stats.recorded_at: %w", err)
			}
			ev.RecordedAt = t.UTC()
		case "tenant_id":
			ev.TenantID = &v
		case "table_name":
			ev.Table = v
		case "field_name":
			ev.Field = &v
		case "query_type":
			ev.QueryType = v
		case "duration_ms":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("decode query_stats.duration_ms: %w", err)
			}
			ev.DurationMs = f
		}
	}
	if ev.RowID == "" {
		return nil, errors.New("decode query_stats row: no id")
	}
	return ev, nil
}

// recordLag records how many bytes of WAL the slot holds back.
func (s *session) recordLag(ctx context.Context) {
	pool, _, err := s.a.conn.get(ctx)
	if err != nil {
		return
	}
	var lag *int64
	qctx, cancel := context.WithTimeout(ctx, s.a.settings.QueryTimeout)
	defer cancel()
	if err := pool.QueryRow(qctx, marker+`select (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint
  from pg_replication_slots where slot_name = $1`, s.slot).Scan(&lag); err != nil {
		return
	}
	s.a.health.appStats(s.a.target.Name, modeReplication, "slot "+s.slot, lag)
}

// publish publishes evs in batches (see publishAll) and returns once all
// are published, or the first error.
func (a *appStats) publish(ctx context.Context, evs []*events.AppStatObserved) error {
	if _, err := publishAll(ctx, a.d.Bus, evs); err != nil {
		return fmt.Errorf("publish app stats: %w", err)
	}
	return nil
}
