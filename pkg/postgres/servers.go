package postgres

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/indexpilot/indexpilot/pkg/config"
	"github.com/indexpilot/indexpilot/pkg/telemetry"
)

// ErrNoHeadroom is matched (errors.Is) by the error of a connection
// IndexPilot did not open because the server has fewer free connection
// slots than the margin (connections.headroom_*), or refused the last one
// with too_many_connections (53300). The error of Open or ConnectBuild
// whose connection the server refused with 53300 (server or role full)
// matches it too; it also keeps the server's SQLSTATE. It is transient:
// the server's budget backs off and tries again by itself. A query on a
// pool that is already open may dial too (pgxpool connects inside Acquire
// and Query), and pgx returns that connection's refusal as the bare
// server error, past every hook the registry has: NoHeadroom recognises
// both.
var ErrNoHeadroom = errors.New("too few free connection slots on the server")

// NoHeadroom reports whether err means that the server had no connection
// slot to spare: it matches ErrNoHeadroom, or it is a connection refused
// with too_many_connections (53300), such as the one a pool of Open
// meets when it dials inside a query. On a connection of the registry
// (Open, ConnectBuild) its server is then backing off, logged once, so a
// caller treats the error as a deferral, not as a failure of its own.
func NoHeadroom(err error) bool {
	return errors.Is(err, ErrNoHeadroom) || SQLState(err) == TooManyConnections
}

// MsgBackingOff is the warning a process logs once when a server's free
// connection slots fall below the margin and it stops opening connections
// to it (until the margin plus a whole budget is free again).
const MsgBackingOff = "server short of connection slots: IndexPilot opens no new connection to it and backs off until it has headroom again"

// Names of the connection budget's metrics.
const (
	// MetricServerConnections is the number of connections IndexPilot's
	// process holds open to a server (shared budget and builds).
	MetricServerConnections = "indexpilot_server_connections"
	// MetricServerBackingOff is 1 while IndexPilot opens no connection to
	// a server for lack of headroom, else 0.
	MetricServerBackingOff = "indexpilot_server_backing_off"
	// MetricServerFreeSlots is the number of connection slots free for
	// ordinary roles at the last reading.
	MetricServerFreeSlots = "indexpilot_server_free_slots"
)

// headroomEvery is how old a headroom reading may be before an acquired
// connection reads it again: at most one read per second per server,
// whatever the number of targets.
const headroomEvery = time.Second

// probeLost is how long a probe may stay in flight before another one is
// admitted.
const probeLost = time.Minute

// drainWait bounds how long a closed connection waits for the server to
// end its backend before the slot counts as free again. The server ends
// it at once (budgetConn.Close half-closes first); the bound is for a
// server that does not answer.
const drainWait = 2 * time.Second

// Registry holds the connection budget of every PostgreSQL server (host
// and port) the process connects to. All the target pools of a process
// come from one registry (Servers), whatever the stage, so targets that
// are databases of one server share its budget.
type Registry struct {
	mu      sync.Mutex
	cfg     config.Connections
	log     *slog.Logger
	servers map[string]*server
	metrics sync.Once
	// drainWait is drainWait, longer in a test that shows a slot is not
	// given back by the bound.
	drainWait time.Duration
}

var process = NewRegistry()

// Servers is the process's registry.
func Servers() *Registry { return process }

// NewRegistry returns a registry with the default budget.
func NewRegistry() *Registry {
	return &Registry{cfg: config.Default().Connections, log: slog.Default(), servers: map[string]*server{}, drainWait: drainWait}
}

// Configure sets the process's budget (config connections) and the
// logger of its back-off messages. Call it before opening pools; a new
// per-server limit applies to existing servers from their next connection.
func Configure(c config.Connections, log *slog.Logger) { process.Configure(c, log) }

// Configure sets r's budget and logger and registers its metrics on the
// global meter provider (once).
func (r *Registry) Configure(c config.Connections, log *slog.Logger) {
	r.mu.Lock()
	r.cfg = c
	if log != nil {
		r.log = log
	}
	r.mu.Unlock()
	r.metrics.Do(r.registerMetrics)
}

func (r *Registry) settings() (config.Connections, *slog.Logger) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg, r.log
}

// ServerKey is the budget key of a connection config: its host and port.
func ServerKey(c *pgconn.Config) string {
	return strings.ToLower(c.Host) + ":" + strconv.Itoa(int(c.Port))
}

func (r *Registry) server(key string) *server {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.servers[key]
	if s == nil {
		s = &server{r: r, key: key, pools: map[*pgxpool.Pool]struct{}{},
			idleSince: map[*pgx.Conn]time.Time{}, keepIdle: map[*pgx.Conn]bool{}}
		r.servers[key] = s
	}
	return s
}

// ServerStats is what a registry knows of one server.
type ServerStats struct {
	Server string
	// Open is the connections IndexPilot holds open to it now; Peak the
	// most at once since the registry first saw it.
	Open, Peak int
	// Builds is the dedicated build connections among Open.
	Builds int
	// Waiting is the callers waiting for a slot of the budget.
	Waiting int
	// BackingOff is true while no new connection is opened.
	BackingOff bool
	// FreeSlots is the free slots for ordinary roles at the last reading
	// (-1: never read), Margin the headroom kept.
	FreeSlots, Margin int
	// Backoffs counts the times the server entered back-off.
	Backoffs int
	// Dials counts the connections the registry has dialed to the server
	// (refused ones included, requests to cancel a query excepted): what
	// a tight retry loop would drive up.
	Dials int
}

// Stats returns the state of every server r has seen.
func (r *Registry) Stats() []ServerStats {
	r.mu.Lock()
	list := make([]*server, 0, len(r.servers))
	for _, s := range r.servers {
		list = append(list, s)
	}
	r.mu.Unlock()
	out := make([]ServerStats, 0, len(list))
	for _, s := range list {
		out = append(out, s.stats())
	}
	return out
}

// StatsOf returns the state of the server of dsn (zero when never seen).
func (r *Registry) StatsOf(dsn string) ServerStats {
	c, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return ServerStats{}
	}
	key := ServerKey(c)
	r.mu.Lock()
	s := r.servers[key]
	r.mu.Unlock()
	if s == nil {
		return ServerStats{Server: key, FreeSlots: -1}
	}
	return s.stats()
}

// Open returns a pool on dsn that opens connections only within the
// budget of its server: on demand, at most connections.per_server at once
// to the server across every pool of the process, closed after
// connections.idle_timeout idle, never while the server has too little
// headroom. application_name is "indexpilot-<stage>". The pool is checked
// with a ping (one connection, which stays for the caller's next query);
// close it with Close, not pool.Close.
func (r *Registry) Open(ctx context.Context, dsn, stage string) (*pgxpool.Pool, error) {
	pc, err := parsePoolConfig(dsn, stage)
	if err != nil {
		return nil, err
	}
	cfg, _ := r.settings()
	s := r.server(ServerKey(&pc.ConnConfig.Config))
	pc.MinConns = 0
	pc.MaxConns = int32(cfg.PerServer)
	pc.MaxConnIdleTime = cfg.IdleTimeout
	pc.HealthCheckPeriod = max(cfg.IdleTimeout/2, 250*time.Millisecond)
	base := pc.ConnConfig.DialFunc
	var self atomic.Pointer[pgxpool.Pool]
	pc.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		// A pool that already holds a connection in use asks for a
		// second one at once (a scoring run's reads beside its what-if
		// session): it goes first in line, since it keeps a slot busy
		// while it waits.
		p := self.Load()
		return s.dial(ctx, base, network, addr, false, p != nil && p.Stat().AcquiredConns() > 0)
	}
	pc.ConnConfig.Tracer = connectTracer{s}
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error { return s.afterConnect(ctx, c) }
	pc.PrepareConn = func(ctx context.Context, c *pgx.Conn) (bool, error) {
		if ctx.Value(evictIdleCtx{}) == nil {
			s.acquired(c)
			s.refresh(ctx, c)
		}
		return true, nil
	}
	// No AfterRelease: pgxpool runs it in a goroutine and puts the
	// connection back only after it, so a caller's next statement would
	// find the pool empty and open another connection (the tracer's
	// TraceRelease notes the idle time within Release instead).
	pc.BeforeClose = func(c *pgx.Conn) { s.acquired(c) }
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open pool: %s", Describe(err))
	}
	self.Store(pool)
	s.add(pool)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		r.Close(pool)
		return nil, fmt.Errorf("connect to %s:%d/%s: %w", pc.ConnConfig.Host, pc.ConnConfig.Port, pc.ConnConfig.Database, describedError{err})
	}
	return pool, nil
}

// Close closes a pool opened by Open and forgets it.
func (r *Registry) Close(p *pgxpool.Pool) {
	if p == nil {
		return
	}
	r.mu.Lock()
	list := make([]*server, 0, len(r.servers))
	for _, s := range r.servers {
		list = append(list, s)
	}
	r.mu.Unlock()
	for _, s := range list {
		s.remove(p)
	}
	p.Close()
}

// ConnectBuild opens the dedicated connection of an index build from cfg
// (typically a copy of a target pool's ConnConfig). It does not take a
// slot of the shared budget (each running build adds one connection, and
// the gatekeeper limits the builds), but it is counted, and it is not
// opened while the server has too little headroom. Requests to cancel its
// queries are always sent. Its errors never include the DSN.
func (r *Registry) ConnectBuild(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	s := r.server(ServerKey(&cfg.Config))
	cfg = cfg.Copy()
	base := cfg.DialFunc
	if base == nil {
		base = (&net.Dialer{KeepAlive: 5 * time.Minute}).DialContext
	}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return s.dial(ctx, base, network, addr, true, false)
	}
	cfg.Tracer = connectTracer{s}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, describedError{err}
	}
	if err := s.afterConnect(ctx, conn); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
		return nil, err
	}
	return conn, nil
}

// describedError renders a connection error without the DSN while still
// matching ErrNoHeadroom and the server's SQLSTATE. A refusal with
// too_many_connections matches ErrNoHeadroom as well: its caller treats
// it as the back-off it started (no error of its own in the log).
type describedError struct{ err error }

func (e describedError) Error() string { return Describe(e.err) }
func (e describedError) Unwrap() error { return e.err }

// Is matches ErrNoHeadroom for a connection refused with 53300.
func (e describedError) Is(target error) bool {
	return target == ErrNoHeadroom && SQLState(e.err) == TooManyConnections
}

// server is the budget of one host and port.
type server struct {
	r   *Registry
	key string

	mu      sync.Mutex
	inUse   int // shared slots taken
	queue   []chan struct{}
	pools   map[*pgxpool.Pool]struct{}
	open    int
	peak    int
	builds  int
	reading headroomReading
	// back-off state
	blocked bool
	// warned: the shortage was logged and its end not yet; backTimer logs
	// the end once headroom has held for backoff_max (a flapping server
	// is one shortage, logged once).
	warned    bool
	backTimer *time.Timer
	reason    string
	nextTry   time.Time
	backoff   time.Duration
	// probing is the probe in flight while backing off (0: none): the
	// one connection attempt admitted to read the headroom again.
	probing    uint64
	probeSeq   uint64
	probeAt    time.Time
	refreshing bool // a refresh is running
	backoffs   int
	dials      int
	evicting   bool
	// idleSince is when each idle pooled connection was released;
	// keepIdle marks the ones evictIdle puts back.
	idleSince map[*pgx.Conn]time.Time
	keepIdle  map[*pgx.Conn]bool
}

// headroomReading is one look at the server's connection slots.
type headroomReading struct {
	at                                time.Time
	maxConns, superReserved, reserved int
	clients                           int
}

// free is the slots left for an ordinary role.
func (h headroomReading) free() int {
	return h.maxConns - h.superReserved - h.reserved - h.clients
}

// margin is the free slots IndexPilot leaves to others.
func margin(c config.Connections, maxConns int) int {
	m := (maxConns*c.HeadroomPercent + 99) / 100
	return max(m, c.HeadroomMin)
}

func (s *server) stats() ServerStats {
	cfg, _ := s.r.settings()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ServerStats{Server: s.key, Open: s.open, Peak: s.peak, Builds: s.builds, Waiting: len(s.queue),
		BackingOff: s.blocked, FreeSlots: -1, Backoffs: s.backoffs, Dials: s.dials}
	if !s.reading.at.IsZero() {
		st.FreeSlots = s.reading.free()
		st.Margin = margin(cfg, s.reading.maxConns)
	}
	return st
}

func (s *server) add(p *pgxpool.Pool) {
	s.mu.Lock()
	s.pools[p] = struct{}{}
	s.mu.Unlock()
}

func (s *server) remove(p *pgxpool.Pool) {
	s.mu.Lock()
	delete(s.pools, p)
	s.mu.Unlock()
}

func (s *server) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// admit says whether a new connection may be opened now: always, unless
// the server is backing off; then only one probe once the wait is over,
// whose token it returns (0: not a probe).
func (s *server) admit() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.blocked {
		return 0, nil
	}
	// A probe still in flight after probeLost is taken as lost (a
	// safety net: every path of a connection attempt ends its probe).
	if (s.probing != 0 && time.Since(s.probeAt) < probeLost) || time.Now().Before(s.nextTry) {
		return 0, fmt.Errorf("%w: %s: %s; next attempt in %s", ErrNoHeadroom, s.key, s.reason, time.Until(s.nextTry).Round(time.Millisecond))
	}
	s.probeSeq++
	s.probing, s.probeAt = s.probeSeq, time.Now()
	return s.probing, nil
}

// probeDone ends the probe of token tok, if it is still the one in
// flight: only the attempt that holds the probe ends it.
func (s *server) probeDone(tok uint64) {
	s.mu.Lock()
	if tok != 0 && s.probing == tok {
		s.probing = 0
	}
	s.mu.Unlock()
}

// attempt is one connection attempt of pgx (from the tracer's start to
// its end, fallback configurations included): whether it holds the
// server's probe.
type attempt struct {
	s     *server
	token atomic.Uint64
}

type attemptKey struct{}

// endProbe ends the probe a holds, if any.
func (a *attempt) endProbe() {
	if a == nil {
		return
	}
	if tok := a.token.Swap(0); tok != 0 {
		a.s.probeDone(tok)
	}
}

// attemptOf is the attempt that opened c (nil when unknown).
func attemptOf(c *pgx.Conn) *budgetConn {
	nc := c.PgConn().Conn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	bc, _ := nc.(*budgetConn)
	return bc
}

// acquire takes a shared slot, waiting in line for one (at its head when
// first); while it waits,
// the idle connections of the server's other pools are closed.
func (s *server) acquire(ctx context.Context, first bool) error {
	cfg, _ := s.r.settings()
	s.mu.Lock()
	if s.inUse < cfg.PerServer && len(s.queue) == 0 {
		s.inUse++
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if first {
		s.queue = append([]chan struct{}{ch}, s.queue...)
	} else {
		s.queue = append(s.queue, ch)
	}
	evict := !s.evicting
	s.evicting = true
	s.mu.Unlock()
	if evict {
		go s.evictWhileWaited()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for i, c := range s.queue {
			if c == ch {
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				s.mu.Unlock()
				return ctx.Err()
			}
		}
		s.mu.Unlock()
		// The slot was handed over meanwhile: give it back.
		s.release()
		return ctx.Err()
	}
}

// release gives a shared slot back, to the first in line if any.
func (s *server) release() {
	cfg, _ := s.r.settings()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 && s.inUse <= cfg.PerServer {
		ch := s.queue[0]
		s.queue = s.queue[1:]
		close(ch)
		return
	}
	s.inUse--
}

// idleGrace is how long a released connection stays with its pool while
// others wait for a slot: the pool's caller usually sends its next
// statement within it (a poll is a few statements in a row), and a
// connection opened per statement would cost a fork each.
const idleGrace = 30 * time.Millisecond

// acquired forgets c's idle time (taken from its pool, or closed).
func (s *server) acquired(c *pgx.Conn) {
	s.mu.Lock()
	delete(s.idleSince, c)
	delete(s.keepIdle, c)
	s.mu.Unlock()
}

// released notes when c went idle, unless evictIdle put it back.
func (s *server) released(c *pgx.Conn) {
	s.mu.Lock()
	if s.keepIdle[c] {
		delete(s.keepIdle, c)
	} else {
		s.idleSince[c] = time.Now()
	}
	s.mu.Unlock()
}

// evictWhileWaited closes, while callers wait for a slot, the connections
// of the server's pools that have been idle for idleGrace, so that a
// waiter gets a slot without waiting for the idle timeout.
func (s *server) evictWhileWaited() {
	defer func() {
		s.mu.Lock()
		s.evicting = false
		s.mu.Unlock()
	}()
	for s.waiting() > 0 {
		s.evictIdle()
		time.Sleep(idleGrace / 2)
	}
}

// evictIdleCtx marks the context of evictIdle's acquisitions: they are no
// use, so no headroom read and no change of idle time.
type evictIdleCtx struct{}

// evictIdle closes the connections idle for idleGrace in every pool of the
// server and puts the others back.
func (s *server) evictIdle() {
	s.mu.Lock()
	pools := make([]*pgxpool.Pool, 0, len(s.pools))
	for p := range s.pools {
		pools = append(pools, p)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), evictIdleCtx{}, true), 5*time.Second)
	defer cancel()
	for _, p := range pools {
		for _, c := range p.AcquireAllIdle(ctx) {
			s.mu.Lock()
			since, known := s.idleSince[c.Conn()]
			old := !known || time.Since(since) >= idleGrace
			if !old {
				s.keepIdle[c.Conn()] = true
			}
			s.mu.Unlock()
			if old {
				conn := c.Hijack()
				s.acquired(conn)
				_ = conn.Close(ctx)
			} else {
				c.Release()
			}
		}
	}
}

// dial opens one connection within the budget: admitted (headroom), a
// shared slot taken unless build, admitted again if it waited in line for
// the slot (the server may have gone short meanwhile), then base's
// connection, wrapped so that closing it frees the slot once the server
// has ended the backend. A dial outside a connection attempt of pgx is a
// cancel request: it takes no connection slot, so it is not budgeted. A
// dial inside one of dial's own (base is itself a budgeted DialFunc, as
// in ConnectBuild on a pool's ConnConfig) was budgeted by the outer one.
func (s *server) dial(ctx context.Context, base pgconn.DialFunc, network, addr string, build, first bool) (net.Conn, error) {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	if a == nil || ctx.Value(budgetedDial{}) != nil {
		return base(ctx, network, addr)
	}
	// A fallback of an attempt that holds the probe is the same probe.
	if a.token.Load() == 0 {
		tok, err := s.admit()
		if err != nil {
			return nil, err
		}
		a.token.Store(tok)
	}
	if !build {
		if err := s.acquire(ctx, first); err != nil {
			a.endProbe()
			return nil, err
		}
		if a.token.Load() == 0 {
			tok, err := s.admit()
			if err != nil {
				s.release()
				return nil, err
			}
			a.token.Store(tok)
		}
	}
	done := func() {
		if !build {
			s.release()
		}
	}
	s.mu.Lock()
	s.dials++
	s.mu.Unlock()
	c, err := base(context.WithValue(ctx, budgetedDial{}, true), network, addr)
	if err != nil {
		done()
		a.endProbe()
		return nil, err
	}
	s.mu.Lock()
	s.open++
	s.peak = max(s.peak, s.open)
	if build {
		s.builds++
	}
	s.mu.Unlock()
	s.r.mu.Lock()
	drain := s.r.drainWait
	s.r.mu.Unlock()
	return &budgetConn{Conn: c, attempt: a, drain: drain, done: func() {
		s.mu.Lock()
		s.open--
		if build {
			s.builds--
		}
		s.mu.Unlock()
		done()
	}}, nil
}

// budgetedDial marks the context of the base dial of a budgeted
// connection: a budgeted DialFunc under it dials without budgeting again.
type budgetedDial struct{}

// budgetConn is a connection counted against its server's budget.
type budgetConn struct {
	net.Conn
	once    sync.Once
	done    func()
	drain   time.Duration // drainWait
	attempt *attempt
	// endProbe: the probe this connection was ends once its backend is
	// gone (a refused probe), so that the next probe never overlaps it.
	endProbe atomic.Bool
}

// Close closes the connection and frees its slot once the server has
// closed its end: a backend leaves pg_stat_activity and frees its
// connection slot before its socket closes, so the slot is never counted
// free while the backend still holds one.
//
// It first shuts its own sending side (a TCP or Unix socket's
// CloseWrite): a server that still waits for something from the client
// sees the end of it and closes at once. That is the case of the TLS
// attempt of sslmode=prefer (pgx's default) on a server without TLS: the
// server answers the SSLRequest with N and waits for a startup packet
// that never comes (up to its authentication_timeout), while pgx dials
// again without TLS. Without the half-close, each new connection would
// leave that refused attempt's slot taken until drainWait ran out, and a
// waiter behind it (a scoring run's catalog read beside its what-if
// session) would wait for it with no idle connection to close instead. A
// connection of a custom DialFunc without CloseWrite still has the bound.
func (c *budgetConn) Close() error {
	c.once.Do(func() {
		go func() {
			if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
				_ = hc.CloseWrite()
			}
			_ = c.Conn.SetReadDeadline(time.Now().Add(c.drain))
			_, _ = io.Copy(io.Discard, c.Conn)
			_ = c.Conn.Close()
			c.done()
			if c.endProbe.Load() {
				c.attempt.endProbe()
			}
		}()
	})
	return nil
}

// headroomSQL reads the server's connection slots: client backends only
// (background workers, autovacuum and WAL senders have slots of their
// own). reserved_connections exists from PostgreSQL 16. A role without
// pg_read_all_stats sees the backend_type of its own sessions only: the
// other sessions connected to a database (datid set) count too, which
// may count a few autovacuum or parallel workers among them (too few free
// slots rather than too many); the server's own processes have no datid.
const headroomSQL = "/* indexpilot:headroom */ select current_setting('max_connections')::int, " +
	"current_setting('superuser_reserved_connections')::int, " +
	"coalesce(current_setting('reserved_connections', true)::int, 0), " +
	"(select count(*) from pg_stat_activity where backend_type = 'client backend' " +
	"or (backend_type is null and datid is not null))::int"

func readHeadroom(ctx context.Context, c *pgx.Conn) (headroomReading, error) {
	// at is when the reading was asked for: readings are ordered by it, so
	// one that was slow to arrive never overrides a newer one.
	h := headroomReading{at: time.Now()}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := c.QueryRow(qctx, headroomSQL).Scan(&h.maxConns, &h.superReserved, &h.reserved, &h.clients)
	return h, err
}

// Headroom reads, on c, the connection slots the server has free for an
// ordinary role and the margin a process with the settings cfg leaves free
// on it: the reading the budget's guard takes before it lets a process
// open more connections.
func Headroom(ctx context.Context, c *pgx.Conn, cfg config.Connections) (free, keep int, err error) {
	h, err := readHeadroom(ctx, c)
	if err != nil {
		return 0, 0, err
	}
	return h.free(), margin(cfg, h.maxConns), nil
}

// afterConnect reads the headroom on a new connection; when the server
// has too little, the connection is closed again and the server backs off.
// A probe ends here when the server has headroom, else once its refused
// connection's backend is gone.
func (s *server) afterConnect(ctx context.Context, c *pgx.Conn) error {
	bc := attemptOf(c)
	h, err := readHeadroom(ctx, c)
	if err == nil && !s.observe(h) {
		s.mu.Lock()
		reason := s.reason
		s.mu.Unlock()
		if bc != nil {
			bc.endProbe.Store(true)
		}
		return fmt.Errorf("%w: %s: %s", ErrNoHeadroom, s.key, reason)
	}
	if bc != nil {
		bc.attempt.endProbe()
	}
	if err != nil {
		return fmt.Errorf("read connection headroom: %w", err)
	}
	return nil
}

// refresh reads the headroom again on an acquired connection when the
// last reading is older than headroomEvery (one reader at a time).
func (s *server) refresh(ctx context.Context, c *pgx.Conn) {
	if ctx.Value(evictIdleCtx{}) != nil {
		return
	}
	s.mu.Lock()
	if s.refreshing || time.Since(s.reading.at) < headroomEvery {
		s.mu.Unlock()
		return
	}
	s.refreshing = true
	s.mu.Unlock()
	h, err := readHeadroom(ctx, c)
	s.mu.Lock()
	s.refreshing = false
	s.mu.Unlock()
	if err == nil {
		s.observe(h)
	}
}

// observe records a reading and enters or leaves back-off; it reports
// whether the server has headroom. A reading older than the last one
// (asked for earlier, answered later) changes nothing. Back-off ends only
// when the margin plus a whole budget (connections.per_server) is free:
// IndexPilot's own connections opening again must not take the server
// straight back below the margin, so one shortage is one back-off, logged
// once, not a flapping between the two.
func (s *server) observe(h headroomReading) bool {
	cfg, log := s.r.settings()
	m := margin(cfg, h.maxConns)
	free := h.free()
	s.mu.Lock()
	if h.at.Before(s.reading.at) {
		ok := !s.blocked
		s.mu.Unlock()
		return ok
	}
	s.reading = h
	need := m
	if s.blocked {
		need = m + cfg.PerServer
	}
	ok := free >= need
	if ok {
		was := s.blocked
		s.blocked, s.backoff, s.reason = false, 0, ""
		if was && s.warned && s.backTimer == nil {
			s.backTimer = time.AfterFunc(cfg.BackoffMax, func() {
				s.mu.Lock()
				if s.blocked || !s.warned {
					s.mu.Unlock()
					return
				}
				s.warned, s.backTimer = false, nil
				s.mu.Unlock()
				log.Info("connection headroom is back: opening connections again", "server", s.key, "free_slots", free, "margin", m)
			})
		}
		s.mu.Unlock()
		return true
	}
	s.mu.Unlock()
	s.block(fmt.Sprintf("%d connection slots free for ordinary roles, fewer than the margin of %d (max_connections %d)", free, m, h.maxConns), free, m)
	return false
}

// block enters (or prolongs) back-off: no new connection before the
// doubled wait, logged once when it starts.
func (s *server) block(reason string, free, m int) {
	cfg, log := s.r.settings()
	s.mu.Lock()
	was := s.blocked
	s.blocked, s.reason = true, reason
	if s.backoff == 0 {
		s.backoff = time.Second
	} else {
		s.backoff = min(2*s.backoff, cfg.BackoffMax)
	}
	s.backoff = min(s.backoff, cfg.BackoffMax)
	s.nextTry = time.Now().Add(s.backoff)
	if !was {
		s.backoffs++
	}
	if s.backTimer != nil {
		// Short again before the end of the last shortage was logged:
		// the same shortage.
		s.backTimer.Stop()
		s.backTimer = nil
	}
	warn := !was && !s.warned
	s.warned = s.warned || warn
	s.mu.Unlock()
	if warn {
		log.Warn(MsgBackingOff,
			"server", s.key, "reason", reason, "free_slots", free, "margin", m)
	}
}

// connectTracer sees how each connection attempt ended: a refusal with
// too_many_connections (53300) puts the server in back-off.
type connectTracer struct{ s *server }

func (connectTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (connectTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceRelease notes when a pooled connection goes idle. pgxpool calls it
// at the start of Release, before the connection is back in its pool.
func (t connectTracer) TraceRelease(_ *pgxpool.Pool, d pgxpool.TraceReleaseData) {
	t.s.released(d.Conn)
}

// TraceConnectStart marks the context of a connection attempt: its dials
// are budgeted (a dial without it is a cancel request).
func (t connectTracer) TraceConnectStart(ctx context.Context, _ pgx.TraceConnectStartData) context.Context {
	return context.WithValue(ctx, attemptKey{}, &attempt{s: t.s})
}

// TooManyConnections is the SQLSTATE of a connection refused because the
// server has no slot left.
const TooManyConnections = "53300"

func (t connectTracer) TraceConnectEnd(ctx context.Context, d pgx.TraceConnectEndData) {
	if d.Err == nil {
		return
	}
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	a.endProbe()
	if SQLState(d.Err) == TooManyConnections {
		t.s.block("the server refused a connection: "+Describe(d.Err), 0, 0)
	}
}

func (r *Registry) registerMetrics() {
	m := telemetry.Meter()
	conns, err1 := m.Int64ObservableGauge(MetricServerConnections,
		metric.WithDescription("Connections IndexPilot holds open to a PostgreSQL server (shared budget and builds), by server."),
		metric.WithUnit("{connection}"))
	off, err2 := m.Int64ObservableGauge(MetricServerBackingOff,
		metric.WithDescription("1 while IndexPilot opens no new connection to a server for lack of free connection slots, by server."))
	free, err3 := m.Int64ObservableGauge(MetricServerFreeSlots,
		metric.WithDescription("Connection slots free for ordinary roles on a server at the last reading, by server."),
		metric.WithUnit("{connection}"))
	if err := errors.Join(err1, err2, err3); err != nil {
		return
	}
	_, _ = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, st := range r.Stats() {
			a := metric.WithAttributes(attribute.String("server", st.Server))
			o.ObserveInt64(conns, int64(st.Open), a)
			var b int64
			if st.BackingOff {
				b = 1
			}
			o.ObserveInt64(off, b, a)
			if st.FreeSlots >= 0 {
				o.ObserveInt64(free, int64(st.FreeSlots), a)
			}
		}
		return nil
	}, conns, off, free)
}
