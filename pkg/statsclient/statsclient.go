// Package statsclient lets an application report tenant-aware query
// statistics to IndexPilot: which tenant ran a query on which table and
// field, of which kind, and how long it took. The rows go to the
// indexpilot.query_stats table of the application's database (create it
// with `indexpilot init --target NAME`), from where the collector streams
// them by logical replication.
//
// Record never blocks and never fails the caller's request: statistics
// are buffered in memory (bounded), written in batches by a background
// goroutine, and what cannot be kept or written is counted, not returned.
package statsclient

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Stat is one query an application ran.
type Stat struct {
	// TenantID is the tenant the query ran for; "" stores NULL (a query
	// not scoped to a tenant).
	TenantID string
	// Table is the table queried (required).
	Table string
	// Field is the column the query filtered on; "" stores NULL.
	Field string
	// QueryType is the kind of query: "select", "insert", "update",
	// "delete" or the application's own word (required).
	QueryType string
	// Duration is how long the query took; negative is stored as 0.
	Duration time.Duration
	// At is when it ran; zero means when Record was called.
	At time.Time
}

// Copier is what the client writes through: *pgxpool.Pool and *pgx.Conn
// (not safe for concurrent use: give it its own) satisfy it.
type Copier interface {
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error)
}

// Options tune a Client. Zero values take the defaults.
type Options struct {
	// BatchSize is how many rows make a flush (default 100).
	BatchSize int
	// FlushInterval is the longest a recorded row waits (default 5 s).
	FlushInterval time.Duration
	// BufferSize bounds the rows held in memory (default 10,000); beyond
	// it Record drops and counts.
	BufferSize int
	// FlushTimeout bounds one write (default 10 s).
	FlushTimeout time.Duration
	// Logger receives flush errors (default slog.Default()).
	Logger *slog.Logger
}

// Counters say what happened to the rows given to Record.
type Counters struct {
	// Recorded rows were accepted into the buffer.
	Recorded int64
	// Dropped rows were refused: the buffer was full or the client closed.
	Dropped int64
	// Written rows reached the database.
	Written int64
	// FlushErrors counts failed writes; FailedRows the rows they lost.
	FlushErrors int64
	FailedRows  int64
}

// Client buffers and writes statistics. It is safe for concurrent use.
type Client struct {
	db   Copier
	opts Options
	in   chan Stat
	quit chan struct{}
	done chan struct{}

	mu     sync.RWMutex
	closed bool

	recorded, dropped, written, flushErrors, failedRows atomic.Int64
}

// New starts a client writing through db.
func New(db Copier, opts Options) (*Client, error) {
	if db == nil {
		return nil, fmt.Errorf("new stats client: nil database")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 100
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 5 * time.Second
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = 10000
	}
	if opts.FlushTimeout <= 0 {
		opts.FlushTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &Client{db: db, opts: opts, in: make(chan Stat, opts.BufferSize), quit: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c, nil
}

// Record queues s and returns at once: true when it was accepted, false
// when it was dropped (buffer full, or the client closed). It never blocks
// and never fails the caller. ctx is not used to wait; it is accepted so
// that calls read naturally inside request handlers.
func (c *Client) Record(_ context.Context, s Stat) bool {
	if s.At.IsZero() {
		s.At = time.Now()
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		c.dropped.Add(1)
		return false
	}
	select {
	case c.in <- s:
		c.recorded.Add(1)
		return true
	default:
		c.dropped.Add(1)
		return false
	}
}

// Counters returns the client's counters so far.
func (c *Client) Counters() Counters {
	return Counters{
		Recorded: c.recorded.Load(), Dropped: c.dropped.Load(), Written: c.written.Load(),
		FlushErrors: c.flushErrors.Load(), FailedRows: c.failedRows.Load(),
	}
}

// Close stops accepting rows, writes what is buffered and waits for it
// (or for ctx). It is safe to call more than once.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.quit)
	}
	c.mu.Unlock()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close stats client: %w", ctx.Err())
	}
}

func (c *Client) loop() {
	defer close(c.done)
	batch := make([]Stat, 0, c.opts.BatchSize)
	tick := time.NewTicker(c.opts.FlushInterval)
	defer tick.Stop()
	flush := func() {
		if len(batch) > 0 {
			c.flush(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case s := <-c.in:
			batch = append(batch, s)
			if len(batch) >= c.opts.BatchSize {
				flush()
			}
		case <-tick.C:
			flush()
		case <-c.quit:
			// Record cannot add anything now: drain and write.
			for {
				select {
				case s := <-c.in:
					batch = append(batch, s)
					if len(batch) >= c.opts.BatchSize {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
}

var columns = []string{"recorded_at", "tenant_id", "table_name", "field_name", "query_type", "duration_ms"}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// flush writes one batch; a failure is logged and counted, never returned.
func (c *Client) flush(batch []Stat) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.FlushTimeout)
	defer cancel()
	rows := make([][]any, len(batch))
	for i, s := range batch {
		ms := float64(max(s.Duration, 0)) / float64(time.Millisecond)
		rows[i] = []any{s.At, nullable(s.TenantID), s.Table, nullable(s.Field), s.QueryType, ms}
	}
	n, err := c.db.CopyFrom(ctx, pgx.Identifier{"indexpilot", "query_stats"}, columns, pgx.CopyFromRows(rows))
	if err != nil {
		c.flushErrors.Add(1)
		c.failedRows.Add(int64(len(batch)))
		c.opts.Logger.Warn("indexpilot stats flush failed: rows dropped", "rows", len(batch), "error", err.Error())
		return
	}
	c.written.Add(n)
}
