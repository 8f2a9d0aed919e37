// Package whatif asks the real PostgreSQL planner what a statement would
// cost if some indexes existed, without building them: HypoPG hypothetical
// indexes plus a plain EXPLAIN of the statement's generic plan.
//
// # Sessions
//
// HypoPG indexes live in the memory of one backend, so all what-if work for
// a caller happens on one connection taken from the pool: Engine.Acquire
// returns a Session, and Session.Close always calls hypopg_reset() before
// the connection goes back (or closes the connection when it cannot), so
// the next user of that pooled connection never sees a hypothetical index.
// A Session is not safe for concurrent use; use one per goroutine. The
// Engine and its cache are shared.
//
// # How a cost is obtained
//
// Acquire sets the session up for planning only (plan_cache_mode =
// force_generic_plan, default_transaction_read_only = on, short
// statement_timeout and lock_timeout) and Close puts the previous values
// back. Cost then makes the session's hypothetical indexes exactly the
// requested set — dropping and creating the difference, or resetting and
// recreating the set when the session nears HypoPG's fake-OID limit — and
// plans the statement, in two pipelined round trips:
//
//  1. hypopg_drop_index / hypopg_create_index as needed;
//     Parse <statement> as a named protocol-level prepared statement
//  2. EXPLAIN (FORMAT JSON) EXECUTE <name>(NULL, …)   -- one NULL per parameter
//     then, in a segment of its own, Close <name>
//
// The statement is prepared afresh for every evaluation, because a cached
// generic plan would not notice that the hypothetical indexes changed. The
// statement is never executed: EXPLAIN without ANALYZE only plans, and a
// generic plan does not look at the NULL arguments. Every transaction of
// the session is read-only, a second fence against anything writing while
// it is planned.
//
// # Representative values
//
// Session.Price decides, per statement, whether it is priced by its generic
// plan or by the weighted mean of custom plans over representative value
// sets (pg_qualstats' recorded constants, the application's calls per
// tenant, pg_stats, observed samples; see Price). A custom-priced
// evaluation replaces step 2's EXPLAIN EXECUTE by one EXPLAIN of the
// statement per value set, sent with the extended
// protocol and the values bound as its parameters — never spliced into
// the text; EXECUTE cannot take bound parameters. Statements with
// pg_stat_statements' typed literals (`date $1`, `interval $2 day`) are
// rewritten on the parse tree into casts first (AnalyzeStatement).
//
// The same path is used on every server version from 12 on. PostgreSQL 16
// added EXPLAIN (GENERIC_PLAN), but it only plans generically when the
// statement's $n are not protocol parameters — that is, when it is sent
// with the simple query protocol, which also accepts several commands in
// one string. Sent with the extended protocol (the only way workload text
// reaches the server here), its $n become bind parameters whose values the
// planner folds in as constants, so NULLs would give a wrong plan. The
// prepared-statement path has neither problem and gives the same generic
// plan.
//
// # Safety of workload text
//
// The statement text comes from the workload. It reaches the server only as
// the body of one extended-protocol Parse message, which the server rejects
// when it holds more than one command, after Check (one SELECT, UPDATE,
// DELETE or WITH statement). Hypothetical indexes are created from
// indexdef.CreateSQL of a validated events.IndexSpec, never from workload
// text. Our own SQL starts with the marker comment /* indexpilot:scorer */
// (the pkg/postgres probes with /* indexpilot:probe */); the evaluated
// statement keeps its own text, and the session keeps pg_stat_statements
// from counting its evaluations as calls when it may (see
// Session.InflatesCalls).
//
// # Without HypoPG
//
// When the hypopg extension is not installed in the target database,
// Session.Available reports false, Cost still answers for an empty index
// set (the current plan), and Cost with indexes and Size return
// ErrNoHypoPG. The caller then falls back to a statistics model built from
// pg_stats and says so in its evidence; StatsSize is the size half of such
// a model.
package whatif

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// Errors a caller can test with errors.Is.
var (
	// ErrNotEvaluable means the server cannot plan the statement in this
	// database: a parameter whose type cannot be inferred (42P18), a
	// syntax error in a normalized text (`interval $1`), a relation or
	// column that does not exist. The returned error also wraps the
	// server's error. Retrying does not help; the answer is cached.
	ErrNotEvaluable = errors.New("statement is not evaluable")
	// ErrRefused means Check rejected the statement before it was sent.
	ErrRefused = errors.New("statement refused")
	// ErrNoHypoPG means the hypopg extension is not installed in the
	// target database, so hypothetical indexes cannot be evaluated.
	ErrNoHypoPG = errors.New("hypopg is not installed")
	// ErrInvalidIndex means an index spec cannot be rendered or HypoPG
	// rejected it (unknown table or column, unsupported method).
	ErrInvalidIndex = errors.New("invalid hypothetical index")
	// ErrTimeout means an evaluation hit the statement or lock timeout;
	// the statement may be evaluable later or with a longer timeout.
	ErrTimeout = errors.New("what-if evaluation timed out")
)

// stage is the marker stage name of every statement this package sends.
const stage = "scorer"

var marker = postgres.Marker(stage)

// Defaults for Options.
const (
	DefaultStatementTimeout = 2 * time.Second
	DefaultLockTimeout      = 500 * time.Millisecond
	DefaultResetEvery       = 500
	DefaultCacheEntries     = 100_000
	// maxResetEvery keeps a session well inside HypoPG's fake-OID range
	// (about 2,500 OIDs below FirstNormalObjectId).
	maxResetEvery = 2000
)

// minServerVersion is the first release with plan_cache_mode.
const minServerVersion = 120000

// Options tune an Engine. Zero values take the defaults.
type Options struct {
	// StatementTimeout bounds every statement a session runs
	// (statement_timeout, set for the session and restored by Close).
	// Default 2 s.
	StatementTimeout time.Duration
	// LockTimeout bounds waiting for a table lock while planning, e.g.
	// behind a pending ALTER TABLE (lock_timeout). Default 500 ms.
	LockTimeout time.Duration
	// ResetEvery is how many hypothetical indexes a session may create
	// before it resets HypoPG and recreates only the set it needs. Default
	// 500; at most 2000.
	ResetEvery int
	// CacheEntries bounds the what-if cache (least recently used entries
	// go first). Default 100,000.
	CacheEntries int
}

func (o Options) withDefaults() (Options, error) {
	if o.StatementTimeout == 0 {
		o.StatementTimeout = DefaultStatementTimeout
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.ResetEvery == 0 {
		o.ResetEvery = DefaultResetEvery
	}
	if o.CacheEntries == 0 {
		o.CacheEntries = DefaultCacheEntries
	}
	switch {
	case o.StatementTimeout < time.Millisecond:
		return o, fmt.Errorf("what-if options: statement timeout %s is below 1ms", o.StatementTimeout)
	case o.LockTimeout < time.Millisecond:
		return o, fmt.Errorf("what-if options: lock timeout %s is below 1ms", o.LockTimeout)
	case o.ResetEvery < 1 || o.ResetEvery > maxResetEvery:
		return o, fmt.Errorf("what-if options: reset every %d creates is outside 1..%d", o.ResetEvery, maxResetEvery)
	case o.CacheEntries < 1:
		return o, fmt.Errorf("what-if options: cache entries %d is below 1", o.CacheEntries)
	}
	return o, nil
}

// Engine evaluates what-if questions against one target database. It owns
// the cache that its sessions share; costs depend on the target's
// statistics and real indexes, so use one Engine per target and call
// ResetCache when those change (after an index build or an ANALYZE).
type Engine struct {
	pool  *pgxpool.Pool
	opts  Options
	cache *cache

	mu sync.Mutex
	// shapes caches AnalyzeStatement by query text (a nil shape: the
	// statement does not parse); pricings holds what Session.Price
	// decided, by statement key.
	shapes   map[string]*Shape
	pricings map[string]*Pricing
	// plans counts the plans of value sets run by custom pricing.
	plans int
}

// New returns an Engine on pool, the target database's pool.
func New(pool *pgxpool.Pool, opts Options) (*Engine, error) {
	if pool == nil {
		return nil, errors.New("new what-if engine: nil pool")
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Engine{pool: pool, opts: o, cache: newCache(o.CacheEntries),
		shapes: map[string]*Shape{}, pricings: map[string]*Pricing{}}, nil
}

// shapeOf is AnalyzeStatement, cached by text.
func (e *Engine) shapeOf(query string) (*Shape, error) {
	e.mu.Lock()
	sh, ok := e.shapes[query]
	e.mu.Unlock()
	if !ok {
		sh, _ = AnalyzeStatement(query)
		e.mu.Lock()
		e.shapes[query] = sh
		e.mu.Unlock()
	}
	if sh == nil {
		return nil, fmt.Errorf("%w: statement does not parse", ErrNotEvaluable)
	}
	return sh, nil
}

func (e *Engine) register(key string, p *Pricing) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pricings[key] = p
}

// pricing is what Price registered for the statement, or its generic
// pricing.
func (e *Engine) pricing(key, query string) *Pricing {
	e.mu.Lock()
	p := e.pricings[key]
	e.mu.Unlock()
	if p != nil {
		return p
	}
	sh, _ := e.shapeOf(query)
	p = &Pricing{Method: MethodGeneric, shape: sh}
	e.register(key, p)
	return p
}

// PricingMethod is the method that priced the statement (one of the
// Method constants): the custom method Price chose, or MethodGeneric when
// none was chosen or none of its value sets could be planned.
func (e *Engine) PricingMethod(fingerprint, query string) (method string, valueSets int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.pricings[stmtKey(fingerprint, query)]
	if p == nil {
		return MethodGeneric, 0
	}
	return p.Method, len(p.Sets)
}

// ValuePlans is the number of custom plans (one per value set) run.
func (e *Engine) ValuePlans() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.plans
}

// CacheStats returns the hit and miss counters and the number of cached
// answers.
func (e *Engine) CacheStats() CacheStats { return e.cache.stats() }

// ResetCache forgets every cached answer (the counters keep counting).
// Call it when the target's statistics or indexes changed.
func (e *Engine) ResetCache() { e.cache.reset() }
