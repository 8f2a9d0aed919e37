// Package build builds one index on one target safely: CREATE INDEX
// CONCURRENTLY on a dedicated autocommit connection, under a per-table
// advisory lock held for the whole build, with lock_timeout and
// statement_timeout set, and no INVALID leftover of its own left behind
// when it can be helped.
//
// It is idempotent by construction: the index name is deterministic
// (indexdef.Name), an equal valid index under any name means there is
// nothing to do, and an INVALID leftover of an earlier attempt is dropped
// concurrently and rebuilt — unless it is being built right now
// (pg_stat_progress_create_index), in which case it is never touched.
package build

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Stage is the marker name of the statements this package sends.
const Stage = "executor"

// Defaults applied by Options.withDefaults to zero fields.
const (
	DefaultLockTimeout      = 5 * time.Second
	DefaultStatementTimeout = time.Hour
	// DefaultCleanupTimeout bounds dropping a leftover after a failed or
	// cancelled build.
	DefaultCleanupTimeout = time.Minute
)

// Options tunes one build. Zero fields take the defaults above.
type Options struct {
	// LockTimeout is the session's lock_timeout: how long any lock wait of
	// the build (the table lock, the waits for older transactions) may take
	// before the build gives up with SQLSTATE 55P03.
	LockTimeout time.Duration
	// StatementTimeout is the session's statement_timeout, the upper bound
	// of the CREATE INDEX itself.
	StatementTimeout time.Duration
	// LockWait bounds the wait for the per-table advisory lock held by
	// another build; zero means LockTimeout. When it runs out the build
	// returns a Busy error.
	LockWait time.Duration
	// CleanupTimeout bounds dropping an INVALID leftover after a failure or
	// a cancellation (which runs even though the caller's context is done).
	CleanupTimeout time.Duration
	// OnStart, when set, is called with the server pid of the build's
	// session just before each CREATE INDEX CONCURRENTLY starts (once per
	// partition on a partitioned table), so that a watcher can follow its
	// progress in pg_stat_progress_create_index or cancel it with
	// pg_cancel_backend.
	OnStart func(table string, pid uint32)
}

func (o Options) withDefaults() Options {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = DefaultStatementTimeout
	}
	if o.LockWait <= 0 {
		o.LockWait = o.LockTimeout
	}
	if o.CleanupTimeout <= 0 {
		o.CleanupTimeout = DefaultCleanupTimeout
	}
	return o
}

// Result describes the valid index that exists after a successful Build.
type Result struct {
	// Name is the index that now serves the spec: the deterministic name,
	// or the name of an equal index that already existed.
	Name string
	// DDL is the CREATE INDEX CONCURRENTLY statement that was run, without
	// the marker comment; "" when nothing was built.
	DDL string
	// Definition is pg_get_indexdef of the resulting index.
	Definition string
	// AlreadyExisted is true when an equal valid index was found and
	// nothing was built.
	AlreadyExisted bool
	// DroppedLeftover is true when an INVALID leftover of an earlier
	// attempt was dropped before the build.
	DroppedLeftover bool
	// Duration is the wall time of the whole call (lock wait included).
	Duration time.Duration
	// SizeBytes is pg_relation_size of the resulting index.
	SizeBytes int64
}

// Error is a build that did not leave a valid index. It never carries a
// connection string or the statement text.
type Error struct {
	// Op is what failed: "connect", "configure session", "lock table",
	// "load indexes", "drop leftover", "create index", "check index".
	Op string
	// Class says whether retrying can help.
	Class postgres.Class
	// SQLState is the server's code, "" when the error did not come from
	// the server.
	SQLState string
	// Busy is true when another session holds the table's build lock or is
	// building the index right now: nothing was attempted, try later.
	Busy bool
	// LeftoverRemains is true when an INVALID index of ours could not be
	// dropped after the failure (typically the same lock conflict); the
	// next Build drops it before rebuilding.
	LeftoverRemains bool
	// Err is the cause.
	Err error
}

// Error renders the failed step and the server's message with its
// SQLSTATE, never a DSN or the statement text.
func (e *Error) Error() string {
	msg := e.Op + ": " + postgres.Describe(e.Err)
	if e.LeftoverRemains {
		msg += " (invalid leftover not dropped)"
	}
	return msg
}

// Unwrap returns the cause, so errors.Is and errors.As see through.
func (e *Error) Unwrap() error { return e.Err }

// Permanent reports whether retrying cannot help.
func (e *Error) Permanent() bool { return e.Class == postgres.Permanent }

// ErrBusy is the cause of a Busy error.
var ErrBusy = errors.New("index build in progress elsewhere")

// ErrInvalidAfterBuild is the cause when CREATE INDEX CONCURRENTLY reported
// success but the index is not valid.
var ErrInvalidAfterBuild = errors.New("index is not valid after the build")

// newError classifies cause. A done ctx always makes the class Canceled:
// the caller gave up, whatever the server said about the cancelled statement.
func newError(ctx context.Context, op string, cause error) *Error {
	class := postgres.Classify(cause)
	if ctx.Err() != nil || errors.Is(cause, context.Canceled) {
		class = postgres.Canceled
	}
	return &Error{Op: op, Class: class, SQLState: postgres.SQLState(cause), Err: cause}
}

// LockKey is the advisory-lock key of builds on schema.table: the first 8
// bytes of SHA-256 over a fixed prefix and the qualified name, stable across
// processes, versions and servers.
func LockKey(schema, table string) int64 {
	sum := sha256.Sum256([]byte("indexpilot:index-build:" + schema + "." + table))
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// Build makes sure the index spec describes exists and is valid on the
// database behind pool, building it if needed.
//
// It opens its own connection with pool's configuration (never one of the
// pool's connections, so no session setting or lock leaks to other users)
// and closes it before returning; every lock of the session dies with it.
// When ctx is cancelled during the build the server is asked to cancel the
// statement and the INVALID leftover is dropped before Build returns.
//
// Errors are *Error.
func Build(ctx context.Context, pool *pgxpool.Pool, spec events.IndexSpec, opts Options) (Result, error) {
	start := time.Now()
	if err := indexdef.Validate(spec); err != nil {
		return Result{}, &Error{Op: "validate spec", Class: postgres.Permanent, Err: err}
	}
	if pool == nil {
		return Result{}, &Error{Op: "connect", Class: postgres.Permanent, Err: errors.New("nil pool")}
	}
	b := &builder{
		cfg:   pool.Config().ConnConfig,
		spec:  spec,
		opts:  opts.withDefaults(),
		name:  indexdef.Name(spec),
		key:   LockKey(spec.Schema, spec.Table),
		start: start,
	}
	b.ddl = indexdef.CreateSQL(spec, b.name, true)
	kind, err := relKind(ctx, pool, spec.Schema, spec.Table)
	if err != nil {
		return Result{}, newError(ctx, "read table kind", err)
	}
	// Checked up front so that the error names what is missing: CREATE
	// INDEX needs ownership of the table (MAINTAIN does not cover it).
	if err := postgres.CheckBuildPrivilege(ctx, pool, spec.Schema, spec.Table); err != nil {
		class := postgres.Permanent
		if !errors.Is(err, postgres.ErrPrivilege) {
			class = postgres.Classify(err)
		}
		return Result{}, &Error{Op: "check privileges", Class: class, SQLState: postgres.SQLState(err), Err: err}
	}
	if kind == "p" {
		return b.runPartitioned(ctx, pool)
	}
	return b.run(ctx)
}

type builder struct {
	cfg   *pgx.ConnConfig
	spec  events.IndexSpec
	opts  Options
	name  string
	ddl   string
	key   int64
	start time.Time
}

var marker = postgres.Marker(Stage)

// connect opens a dedicated connection whose cancelled queries are
// cancelled on the server too (pgx's default only closes the socket, which
// a running CREATE INDEX would not notice), then configures the session and
// takes the table's advisory lock. The returned release unlocks and closes.
func (b *builder) connect(ctx context.Context) (*pgx.Conn, func(), error) {
	cfg := b.cfg.Copy()
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: 10 * time.Second}
	}
	// A build's connection is one more than the server's shared budget
	// (connections.per_server), counted and opened only with headroom.
	conn, err := postgres.Servers().ConnectBuild(ctx, cfg)
	if err != nil {
		return nil, nil, newError(ctx, "connect", err)
	}
	closeConn := func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}
	if err := configure(ctx, conn, b.opts); err != nil {
		closeConn()
		return nil, nil, newError(ctx, "configure session", err)
	}
	if err := b.lock(ctx, conn); err != nil {
		closeConn()
		return nil, nil, err
	}
	release := func() {
		if !conn.IsClosed() {
			uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, _ = conn.Exec(uctx, marker+"select pg_advisory_unlock($1)", b.key)
			cancel()
		}
		closeConn()
	}
	return conn, release, nil
}

func configure(ctx context.Context, conn *pgx.Conn, o Options) error {
	for _, s := range [][2]string{
		{"lock_timeout", fmt.Sprintf("%dms", o.LockTimeout.Milliseconds())},
		{"statement_timeout", fmt.Sprintf("%dms", o.StatementTimeout.Milliseconds())},
	} {
		if _, err := conn.Exec(ctx, marker+"select set_config($1, $2, false)", s[0], s[1]); err != nil {
			return err
		}
	}
	// Let the server abort the build if this process dies (PostgreSQL 14+,
	// not on every platform): best effort, a failure changes nothing else.
	_, _ = conn.Exec(ctx, marker+"select set_config('client_connection_check_interval', '5s', false)")
	return nil
}

// lock takes the table's session-level advisory lock, polling
// pg_try_advisory_lock for at most LockWait so that a stuck holder never
// hangs the build.
func (b *builder) lock(ctx context.Context, conn *pgx.Conn) error {
	deadline := time.Now().Add(b.opts.LockWait)
	delay := 50 * time.Millisecond
	for {
		var ok bool
		if err := conn.QueryRow(ctx, marker+"select pg_try_advisory_lock($1)", b.key).Scan(&ok); err != nil {
			return newError(ctx, "lock table", err)
		}
		if ok {
			return nil
		}
		if !time.Now().Before(deadline) {
			return &Error{Op: "lock table", Class: postgres.Transient, Busy: true,
				Err: fmt.Errorf("advisory lock of %s held by another build: %w", b.spec.QualifiedTable(), ErrBusy)}
		}
		t := time.NewTimer(min(delay, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return newError(ctx, "lock table", ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, time.Second)
	}
}

func (b *builder) run(ctx context.Context) (Result, error) {
	conn, release, err := b.connect(ctx)
	if err != nil {
		return Result{}, err
	}
	defer release()

	existing, err := indexdef.Load(ctx, conn, b.spec.Schema, b.spec.Table)
	if err != nil {
		return Result{}, newError(ctx, "load indexes", err)
	}
	var valid []indexdef.Existing
	var leftover *indexdef.Existing
	for i, e := range existing {
		if e.Valid {
			valid = append(valid, e)
		} else if e.Name == b.name {
			leftover = &existing[i]
		}
	}
	if e, ok := indexdef.FindEqual(valid, b.spec); ok {
		return Result{Name: e.Name, Definition: e.Definition, AlreadyExisted: true,
			SizeBytes: e.SizeBytes, Duration: time.Since(b.start)}, nil
	}

	var res Result
	if leftover != nil {
		busy, err := inProgress(ctx, conn, b.spec.Schema, b.name)
		if err != nil {
			return Result{}, newError(ctx, "check build progress", err)
		}
		if busy {
			return Result{}, &Error{Op: "drop leftover", Class: postgres.Transient, Busy: true,
				Err: fmt.Errorf("invalid index %s is being built: %w", b.name, ErrBusy)}
		}
		if _, err := conn.Exec(ctx, marker+indexdef.DropSQL(b.spec.Schema, b.name)); err != nil {
			e := newError(ctx, "drop leftover", err)
			e.LeftoverRemains = true
			return Result{}, e
		}
		res.DroppedLeftover = true
	}

	if b.opts.OnStart != nil {
		b.opts.OnStart(b.spec.Table, conn.PgConn().PID())
	}
	if _, err := conn.Exec(ctx, marker+b.ddl); err != nil {
		e := newError(ctx, "create index", err)
		e.LeftoverRemains = !b.cleanup(ctx, conn)
		return Result{}, e
	}

	var ok bool
	err = conn.QueryRow(ctx, marker+`select x.indisvalid, pg_get_indexdef(x.indexrelid), pg_relation_size(x.indexrelid)
  from pg_index x join pg_class i on i.oid = x.indexrelid join pg_namespace n on n.oid = i.relnamespace
 where n.nspname = $1 and i.relname = $2`, b.spec.Schema, b.name).Scan(&ok, &res.Definition, &res.SizeBytes)
	if err != nil {
		e := newError(ctx, "check index", err)
		e.LeftoverRemains = !b.cleanup(ctx, conn)
		return Result{}, e
	}
	if !ok {
		e := &Error{Op: "check index", Class: postgres.Transient, Err: ErrInvalidAfterBuild}
		e.LeftoverRemains = !b.cleanup(ctx, conn)
		return Result{}, e
	}
	res.Name, res.DDL, res.Duration = b.name, b.ddl, time.Since(b.start)
	return res, nil
}

// cleanup drops our INVALID index after a failed or cancelled build and
// reports whether none is left. It runs even when ctx is done, bounded by
// CleanupTimeout. When the build's connection did not survive (a
// cancellation that the server did not answer in time) it uses a new one,
// under the advisory lock again.
func (b *builder) cleanup(ctx context.Context, conn *pgx.Conn) bool {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.CleanupTimeout)
	defer cancel()
	if conn.IsClosed() {
		c, release, err := b.connect(cctx)
		if err != nil {
			return false
		}
		defer release()
		conn = c
	}
	var exists, valid bool
	err := conn.QueryRow(cctx, marker+`select true, x.indisvalid
  from pg_index x join pg_class i on i.oid = x.indexrelid join pg_namespace n on n.oid = i.relnamespace
 where n.nspname = $1 and i.relname = $2`, b.spec.Schema, b.name).Scan(&exists, &valid)
	if errors.Is(err, pgx.ErrNoRows) {
		return true
	}
	if err != nil {
		return false
	}
	if valid {
		// A valid index is never a leftover (it may be someone else's that
		// took our name): leave it.
		return true
	}
	if busy, err := inProgress(cctx, conn, b.spec.Schema, b.name); err != nil || busy {
		return false
	}
	_, err = conn.Exec(cctx, marker+indexdef.DropSQL(b.spec.Schema, b.name))
	return err == nil
}

// inProgress reports whether another backend of this database is building
// schema.name right now. A progress row whose relation is hidden from us
// (another role's backend without pg_read_all_stats) counts as in progress:
// when in doubt, an index is never dropped.
func inProgress(ctx context.Context, q postgres.Querier, schema, name string) (bool, error) {
	var busy bool
	err := q.QueryRow(ctx, marker+`select exists(
  select 1 from pg_stat_progress_create_index p
   where p.datid = (select oid from pg_database where datname = current_database())
     and p.pid <> pg_backend_pid()
     and (p.relid is null
          or p.index_relid = (select i.oid from pg_class i join pg_namespace n on n.oid = i.relnamespace
                               where n.nspname = $1 and i.relname = $2)))`, schema, name).Scan(&busy)
	return busy, err
}
