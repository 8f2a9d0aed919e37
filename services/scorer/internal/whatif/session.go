package whatif

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/indexdef"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

// cleanupTimeout bounds rollback, deallocation and reset, which run even
// when the caller's context is already done.
const cleanupTimeout = 5 * time.Second

// statementName names the protocol-level prepared statement of an
// evaluation; it is closed before the next one. One fixed name keeps the
// text of our EXPLAIN EXECUTE the same from call to call, so
// pg_stat_statements (which records it as a utility statement carrying our
// marker) gets one entry per parameter count, not one per evaluation.
const statementName = "indexpilot_whatif"

// SessionStats counts what one session did on its connection.
type SessionStats struct {
	// Evaluations is the number of EXPLAINs run (cache misses that
	// reached the planner).
	Evaluations int
	// HypoCreates and HypoDrops count hypopg_create_index and
	// hypopg_drop_index calls; HypoResets counts hypopg_reset calls made
	// to stay below HypoPG's fake-OID limit (not those of Acquire and
	// Close).
	HypoCreates, HypoDrops, HypoResets int
}

// Session is one pooled connection doing what-if work. HypoPG indexes
// exist only on this connection. Not safe for concurrent use. Always Close
// it.
type Session struct {
	e       *Engine
	conn    *pgxpool.Conn
	version int
	// hypoSchema is the quoted schema of the hypopg functions; "" when
	// HypoPG is not installed.
	hypoSchema string
	// present maps the Key of every hypothetical index that exists on the
	// connection to its HypoPG OID.
	present map[string]uint32
	// sinceReset counts creates since the last hypopg_reset.
	sinceReset int
	// recreate makes every change of set a reset plus full recreation
	// (the alternative strategy, kept for the benchmark).
	recreate bool
	// pending holds prepared statements not yet closed on the server.
	pending map[string]struct{}
	// saved holds the values the settings had before the session changed
	// them, in the order of settings; dirty says they were changed.
	settings, saved []string
	dirty           bool
	// inflates: pg_stat_statements.track is all and the session may not
	// change it.
	inflates bool
	stats    SessionStats
	broken   bool
	closed   bool
	// skipped says, per value source the server refused in the last
	// Price (pg_qualstats, pg_stats), why it gave no values.
	skipped []string
}

// Acquire takes a connection from the pool for what-if work. It probes the
// server version once (PostgreSQL 12 or later is required) and whether
// HypoPG is installed, resets HypoPG so the session starts with no
// hypothetical index whatever an earlier user left, and sets the session
// up for planning only:
//
//	plan_cache_mode = force_generic_plan
//	default_transaction_read_only = on   (a fence: nothing can write)
//	statement_timeout, lock_timeout      (Options)
//	hypopg.enabled = on                  (when HypoPG is installed)
//	pg_stat_statements.track = top       (when it is all and the role may set it;
//	                                      see InflatesCalls)
//
// Close puts the previous values back.
func (e *Engine) Acquire(ctx context.Context) (*Session, error) {
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire what-if connection: %w", withoutDSN(err))
	}
	s := &Session{e: e, conn: conn, present: map[string]uint32{}, pending: map[string]struct{}{}}
	if err := s.open(ctx); err != nil {
		s.closed = true
		if !s.pg().IsClosed() && (s.hypoSchema != "" || s.dirty) {
			// A reset or the settings may be half done: do not return the
			// connection to the pool.
			_ = s.conn.Conn().Close(context.WithoutCancel(ctx))
		}
		s.conn.Release()
		return nil, err
	}
	return s, nil
}

func (s *Session) open(ctx context.Context) error {
	v, err := postgres.ServerVersion(ctx, s.conn)
	if err != nil {
		return err
	}
	if v < minServerVersion {
		return fmt.Errorf("what-if needs PostgreSQL 12 or later (plan_cache_mode), server version is %d", v)
	}
	s.version = v
	ok, err := postgres.HasExtension(ctx, s.conn, "hypopg")
	if err != nil {
		return err
	}
	o := s.e.opts
	s.settings = []string{"plan_cache_mode", "default_transaction_read_only", "statement_timeout", "lock_timeout"}
	ours := []string{"force_generic_plan", "on",
		strconv.FormatInt(o.StatementTimeout.Milliseconds(), 10), strconv.FormatInt(o.LockTimeout.Milliseconds(), 10)}
	if ok {
		var schema string
		if err := s.conn.QueryRow(ctx, marker+"select n.nspname from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace where e.extname = 'hypopg'").Scan(&schema); err != nil {
			return fmt.Errorf("find hypopg schema: %w", err)
		}
		s.hypoSchema = postgres.Ident(schema)
		// Also loads the library, so that hypopg.enabled exists below.
		if _, err := s.conn.Exec(ctx, marker+"select "+s.fn("hypopg_reset")+"()"); err != nil {
			return fmt.Errorf("reset hypopg: %w", err)
		}
		s.settings = append(s.settings, "hypopg.enabled")
		ours = append(ours, "on")
	}
	if err := s.conn.QueryRow(ctx, marker+"select array_agg(coalesce(pg_catalog.current_setting(n, true), '') order by i) from unnest($1::text[]) with ordinality as u(n, i)",
		s.settings).Scan(&s.saved); err != nil {
		return fmt.Errorf("read session settings: %w", err)
	}
	s.dirty = true
	// With pg_stat_statements.track = all, the executor start/end that
	// EXPLAIN runs for the evaluated statement counts as one call of it:
	// every evaluation would add a phantom call to the workload the
	// collector reports. Track only top-level statements on this session
	// when allowed (superuser, or GRANT SET ON PARAMETER on PostgreSQL 15+).
	var track *string
	if err := s.conn.QueryRow(ctx, marker+"select pg_catalog.current_setting('pg_stat_statements.track', true)").Scan(&track); err != nil {
		return fmt.Errorf("read pg_stat_statements.track: %w", err)
	}
	if track != nil && *track == "all" {
		_, err := s.conn.Exec(ctx, marker+"select pg_catalog.set_config('pg_stat_statements.track', 'top', false)")
		switch {
		case err == nil:
			s.settings = append(s.settings, "pg_stat_statements.track")
			s.saved = append(s.saved, *track)
			ours = append(ours, "top")
		case postgres.SQLState(err) == "42501":
			s.inflates = true
		default:
			return fmt.Errorf("set pg_stat_statements.track: %w", err)
		}
	}
	if err := s.setAll(ctx, ours); err != nil {
		return fmt.Errorf("configure what-if session: %w", err)
	}
	return nil
}

// setAll sets s.settings to values for the session (not a transaction).
func (s *Session) setAll(ctx context.Context, values []string) error {
	_, err := s.conn.Exec(ctx, marker+"select pg_catalog.set_config(n, v, false) from unnest($1::text[], $2::text[]) as u(n, v)",
		s.settings, values)
	return err
}

// Available reports whether HypoPG is installed in the target database, so
// that Cost can take hypothetical indexes. When it is false the caller
// falls back to a pg_stats model (see StatsSize) and says so.
func (s *Session) Available() bool { return s.hypoSchema != "" }

// ServerVersion is the server_version_num probed when the session started.
func (s *Session) ServerVersion() int { return s.version }

// InflatesCalls reports that pg_stat_statements tracks nested statements
// (pg_stat_statements.track = all) and the session's role may not turn
// that off for itself: then every evaluation counts as one call, with no
// time and no rows, of the evaluated statement. Grant the role SET on the
// parameter (PostgreSQL 15+: GRANT SET ON PARAMETER
// pg_stat_statements.track TO …) or use track = top; otherwise the caller
// should discount its evaluations.
func (s *Session) InflatesCalls() bool { return s.inflates }

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats { return s.stats }

// Cost returns the total cost of query's generic plan with exactly indexes
// present as hypothetical indexes (and the table's real indexes, and no
// other hypothetical one). query is a normalized statement ($1, $2 for
// constants) from the workload; it is planned, never executed. The answer
// is cached by (query text, sorted index keys); duplicate specs count
// once. A set larger than ResetEvery is recreated on every change; more
// than 2000 indexes are refused. Errors wrap ErrRefused, ErrNotEvaluable, ErrInvalidIndex,
// ErrNoHypoPG (indexes given, HypoPG missing) or ErrTimeout when those
// apply.
func (s *Session) Cost(ctx context.Context, query string, indexes []events.IndexSpec) (float64, error) {
	return s.cost(ctx, "q"+query, query, indexes)
}

// CostFingerprint is Cost with the cache keyed by the statement's
// fingerprint (pg_query) instead of its text, so texts that differ only in
// spacing or case share answers. An empty fingerprint falls back to the
// text.
func (s *Session) CostFingerprint(ctx context.Context, fingerprint, query string, indexes []events.IndexSpec) (float64, error) {
	if fingerprint == "" {
		return s.Cost(ctx, query, indexes)
	}
	return s.cost(ctx, "f"+fingerprint, query, indexes)
}

func (s *Session) cost(ctx context.Context, stmtKey, query string, indexes []events.IndexSpec) (float64, error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	if err := Check(query); err != nil {
		return 0, err
	}
	set, err := newIndexSet(indexes)
	if err != nil {
		return 0, err
	}
	switch {
	case len(set.keys) > 0 && !s.Available():
		return 0, fmt.Errorf("evaluate %d hypothetical indexes: %w", len(set.keys), ErrNoHypoPG)
	case len(set.keys) > maxResetEvery:
		return 0, fmt.Errorf("%w: %d indexes in one set, at most %d", ErrInvalidIndex, len(set.keys), maxResetEvery)
	}
	p := s.e.pricing(stmtKey, query)
	s.e.mu.Lock()
	// The value sets are part of the key: the same statement and indexes
	// priced with other values is another question. p.key is fixed-length
	// hex or empty.
	key := costKey(kindCost, p.key+":"+stmtKey, set.keys)
	s.e.mu.Unlock()
	badKey := costKey(kindNotEvaluable, stmtKey, nil)
	if ent, ok := s.e.cache.get(key, badKey); ok {
		return ent.value, ent.err
	}
	c, err := s.evaluate(ctx, query, set, p)
	switch {
	case err == nil:
		s.e.cache.put(cacheEntry{key: key, value: c})
	case errors.Is(err, ErrNotEvaluable):
		s.e.cache.put(cacheEntry{key: badKey, err: err})
	}
	return c, err
}

// evaluate plans the statement with set as the hypothetical indexes, in
// two round trips: (1) the HypoPG changes and the Parse of the statement
// (its rewritten text when it has typed literals); (2) the plans — one
// EXPLAIN per value set of a custom pricing, each in a segment of its own,
// or EXPLAIN EXECUTE of the generic plan — then, in a segment of its own,
// so that it runs whatever happened, closing the prepared statement. When
// no value set can be planned the pricing falls back to the generic plan
// for good.
func (s *Session) evaluate(ctx context.Context, query string, set indexSet, p *Pricing) (cost float64, err error) {
	if len(s.pending) > 0 {
		if err := s.finish(ctx); err != nil {
			return 0, err
		}
	}
	s.e.mu.Lock()
	sets, shape, oids, typed, described := p.Sets, p.shape, p.oids, p.typed, p.described
	s.e.mu.Unlock()
	text := query
	if shape != nil {
		text = shape.Text
	}
	defer s.settle(ctx, &err)
	plans := make([][]byte, len(sets))
	if len(sets) > 0 && described != nil {
		// The parameter types are known from an earlier evaluation: one
		// round trip, the HypoPG changes then the plans.
		reqs := s.hypoRequests(set, true)
		if len(reqs) > 0 {
			reqs = append(reqs, syncRequest)
		}
		reqs = append(reqs, s.customRequests(text, shape, described, sets, plans)...)
		if err := s.run(ctx, reqs); err != nil {
			return 0, err
		}
		return s.weighted(ctx, query, set, p, plans)
	}
	name := statementName
	s.pending[name] = struct{}{}
	var sd *pgconn.StatementDescription
	reqs := s.hypoRequests(set, true)
	// Parse (extended protocol): one command only, nothing executed.
	reqs = append(reqs, request{what: "prepare statement", permanent: ErrNotEvaluable,
		prepare: marker + text, prepareName: name, prepareOIDs: oids,
		onPrepared: func(d *pgconn.StatementDescription) { sd = d }}, syncRequest)
	err = s.run(ctx, reqs)
	if s.broken {
		return 0, err
	}
	if err != nil && !typed && shape != nil && isTypeError(err) {
		// pg_stat_statements replaced constants whose type the context
		// does not give (`sum(case … then $2 else $3 end)`, `$4 - $5`):
		// try once more with those parameters typed, for good.
		guess := shape.guessTypes()
		s.e.mu.Lock()
		p.oids, p.typed = guess, true
		s.e.mu.Unlock()
		if guess != nil {
			if ferr := s.finish(ctx); ferr != nil {
				return 0, ferr
			}
			return s.evaluate(ctx, query, set, p)
		}
	}

	var plan []byte
	var end []request
	custom := err == nil && sd != nil && len(sets) > 0 && shape != nil && len(sd.ParamOIDs) == shape.Params
	switch {
	case custom:
		end = s.customRequests(text, shape, sd.ParamOIDs, sets, plans)
	case err == nil && sd != nil:
		end = append(end, request{what: "explain statement", permanent: ErrNotEvaluable,
			sql: explainSQL(name, len(sd.ParamOIDs)),
			onRows: func(rows [][][]byte) error {
				if len(rows) != 1 || len(rows[0]) != 1 {
					return fmt.Errorf("%w: explain returned %d rows", ErrNotEvaluable, len(rows))
				}
				plan = rows[0][0]
				return nil
			}}, syncRequest)
	}
	end = append(end, s.closeRequests(name)...)
	if rerr := s.run(ctx, end); err == nil {
		err = rerr
	}
	if err != nil {
		return 0, err
	}
	if !custom {
		s.stats.Evaluations++
		return totalCost(plan)
	}
	s.e.mu.Lock()
	p.described = sd.ParamOIDs
	s.e.mu.Unlock()
	return s.weighted(ctx, query, set, p, plans)
}

// weighted is the weighted mean cost of the value sets' plans; when none
// could be planned it falls back to the generic plan for good.
func (s *Session) weighted(ctx context.Context, query string, set indexSet, p *Pricing, plans [][]byte) (float64, error) {
	s.e.mu.Lock()
	sets := p.Sets
	s.e.mu.Unlock()
	var sum, weight float64
	n := 0
	for i, doc := range plans {
		if doc == nil || i >= len(sets) {
			continue
		}
		c, err := totalCost(doc)
		if err != nil {
			continue
		}
		sum += sets[i].Weight * c
		weight += sets[i].Weight
		n++
	}
	if n == 0 || weight <= 0 {
		// No value set could be planned (a value the column's type does
		// not accept, a timeout): the generic plan, from now on.
		s.e.mu.Lock()
		p.Method, p.Sets, p.key, p.described = MethodGeneric, nil, "", nil
		s.e.mu.Unlock()
		return s.evaluate(ctx, query, set, p)
	}
	s.stats.Evaluations++
	s.e.mu.Lock()
	s.e.plans += n
	s.e.mu.Unlock()
	return sum / weight, nil
}

// isTypeError reports the errors of a parameter whose type the server
// could not infer or resolved badly.
func isTypeError(err error) bool {
	switch postgres.SQLState(err) {
	case "42883", "42725", "42P18", "42804":
		return true
	}
	return false
}

// customRequests plan text once per value set: EXPLAIN of the statement
// sent with the extended protocol, the values bound as parameters typed
// like the prepared statement's (never spliced into the text). A
// statement whose parameters are bound is planned with their values — the
// custom plan that plan_cache_mode = force_custom_plan gives an EXECUTE;
// EXECUTE itself cannot take bound parameters. A parameter without a
// value gets a neutral one for its type (defaultValue); a set that would
// bind NULL to a parameter compared with a column is left out. Each plan is a
// segment of its own: a set that fails leaves a nil plan, not an error.
func (s *Session) customRequests(text string, shape *Shape, oids []uint32, sets []ValueSet, plans [][]byte) []request {
	var reqs []request
sets:
	for i, vs := range sets {
		binds := make([][]byte, len(oids))
		for j, oid := range oids {
			var v *string
			if j < len(vs.Values) {
				v = vs.Values[j]
			}
			if v == nil {
				v = defaultValue(oid)
			}
			if v == nil && len(shape.Uses[j+1]) > 0 {
				// NULL compared with a column folds the condition to
				// false: not a price. The set is left out.
				continue sets
			}
			if v != nil {
				binds[j] = []byte(*v)
			}
		}
		reqs = append(reqs, request{what: "explain statement with values",
			sql: marker + "EXPLAIN (FORMAT JSON) " + text, binds: binds, oids: oids,
			onRows: func(rows [][][]byte) error {
				if len(rows) == 1 && len(rows[0]) == 1 {
					plans[i] = rows[0][0]
				}
				return nil
			},
			onError: func(error) {}}, syncRequest)
	}
	return reqs
}

// explainSQL explains the prepared statement name with one NULL per
// parameter; a generic plan does not look at them.
func explainSQL(name string, params int) string {
	var b strings.Builder
	b.WriteString(marker)
	b.WriteString("EXPLAIN (FORMAT JSON) EXECUTE ")
	b.WriteString(name)
	if params > 0 {
		b.WriteString("(NULL")
		b.WriteString(strings.Repeat(", NULL", params-1))
		b.WriteString(")")
	}
	return b.String()
}

// totalCost sums the top-level "Total Cost" of every plan in an EXPLAIN
// (FORMAT JSON) document (a rule can rewrite one statement into several).
func totalCost(doc []byte) (float64, error) {
	var plans []struct {
		Plan struct {
			TotalCost *float64 `json:"Total Cost"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal(doc, &plans); err != nil {
		return 0, fmt.Errorf("decode plan: %w", err)
	}
	if len(plans) == 0 {
		return 0, fmt.Errorf("%w: statement has no plan", ErrNotEvaluable)
	}
	var sum float64
	for _, p := range plans {
		if p.Plan.TotalCost == nil {
			return 0, fmt.Errorf("%w: plan has no total cost", ErrNotEvaluable)
		}
		sum += *p.Plan.TotalCost
	}
	return sum, nil
}

// Size returns HypoPG's estimate of the index's size in bytes
// (hypopg_relation_size). It is an upper bound rather than a forecast: on
// PostgreSQL 15 it overestimates a btree by about 2.8× because it ignores
// deduplication. Answers are cached by the spec's Key. The hypothetical
// index stays in place (the next Cost makes the set exact again).
func (s *Session) Size(ctx context.Context, spec events.IndexSpec) (size int64, err error) {
	if err := s.usable(); err != nil {
		return 0, err
	}
	set, err := newIndexSet([]events.IndexSpec{spec})
	if err != nil {
		return 0, err
	}
	if !s.Available() {
		return 0, fmt.Errorf("estimate index size: %w", ErrNoHypoPG)
	}
	k := set.keys[0]
	key := costKey(kindSize, k, nil)
	if ent, ok := s.e.cache.get(key); ok {
		return int64(ent.value), nil
	}
	defer s.settle(ctx, &err)
	readSize := func(rows [][][]byte) error {
		if len(rows) != 1 || len(rows[0]) != 2 {
			return fmt.Errorf("hypopg returned %d rows", len(rows))
		}
		oid, err := strconv.ParseUint(string(rows[0][0]), 10, 32)
		if err != nil {
			return err
		}
		if _, ok := s.present[k]; !ok {
			s.present[k] = uint32(oid)
			s.sinceReset++
			s.stats.HypoCreates++
		}
		size, err = strconv.ParseInt(string(rows[0][1]), 10, 64)
		return err
	}
	var reqs []request
	if oid, ok := s.present[k]; ok {
		reqs = append(reqs, request{what: "estimate index size", permanent: ErrInvalidIndex,
			sql:  marker + "select $1::oid, " + s.fn("hypopg_relation_size") + "($1::oid)",
			args: []string{strconv.FormatUint(uint64(oid), 10)}, onRows: readSize})
	} else {
		if s.sinceReset+1 > s.e.opts.ResetEvery {
			reqs = append(reqs, s.resetRequest())
		}
		reqs = append(reqs, request{what: "create hypothetical index on " + spec.QualifiedTable(), permanent: ErrInvalidIndex,
			sql:  marker + "select indexrelid, " + s.fn("hypopg_relation_size") + "(indexrelid) from " + s.fn("hypopg_create_index") + "($1)",
			args: []string{indexdef.CreateSQL(spec, indexdef.Name(spec), false)}, onRows: readSize})
	}
	reqs = append(reqs, syncRequest)
	if err := s.run(ctx, reqs); err != nil {
		return 0, err
	}
	s.e.cache.put(cacheEntry{key: key, value: float64(size)})
	return size, nil
}

// Close ends the session: it closes leftover prepared statements (and
// rolls back a transaction if one were open), calls hypopg_reset() and
// puts back the settings Acquire changed, before the connection goes back
// to the pool. If any of that fails the connection is closed instead of
// being returned, so no hypothetical index or setting can leak to the next
// user. Close is idempotent and does not depend on any caller's context.
func (s *Session) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.pg().IsClosed() {
		// The backend is gone and its hypothetical indexes with it; the
		// pool discards the connection.
		s.conn.Release()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	err := s.finish(ctx)
	if err == nil && s.Available() {
		if _, rerr := s.conn.Exec(ctx, marker+"select "+s.fn("hypopg_reset")+"()"); rerr != nil {
			err = fmt.Errorf("reset hypopg: %w", rerr)
		} else {
			clear(s.present)
		}
	}
	if err == nil && s.dirty {
		if rerr := s.setAll(ctx, s.saved); rerr != nil {
			err = fmt.Errorf("restore session settings: %w", rerr)
		}
	}
	if (err != nil || s.broken) && !s.pg().IsClosed() {
		_ = s.conn.Conn().Close(ctx)
	}
	s.conn.Release()
	if err != nil {
		return fmt.Errorf("close what-if session: %w", err)
	}
	return nil
}

func (s *Session) pg() *pgconn.PgConn { return s.conn.Conn().PgConn() }

func (s *Session) fn(name string) string { return s.hypoSchema + "." + postgres.Ident(name) }

func (s *Session) usable() error {
	switch {
	case s.closed:
		return errors.New("what-if session is closed")
	case s.broken || s.pg().IsClosed():
		s.broken = true
		return errors.New("what-if session lost its connection")
	}
	return nil
}

// closeRequests close the prepared statement name in a segment of its own.
func (s *Session) closeRequests(name string) []request {
	return []request{{what: "close prepared statement", deallocate: name,
		onClosed: func() { delete(s.pending, name) }}, syncRequest}
}

// settle makes sure the connection is idle with no statement of ours left
// after the round trips of an evaluation: when they could not finish the
// job (an error mid-way, a cancelled context) it falls back to finish.
func (s *Session) settle(ctx context.Context, errp *error) {
	if !s.pg().IsClosed() && s.pg().TxStatus() == 'I' && len(s.pending) == 0 {
		return
	}
	if ferr := s.finish(ctx); ferr != nil && *errp == nil {
		*errp = ferr
	}
}

// finish is the fallback cleanup: it rolls back a transaction left open
// and closes prepared statements, with the simple protocol and a context of
// its own, so it runs even when ctx is done. When it fails the session is
// marked broken and Close discards the connection.
func (s *Session) finish(ctx context.Context) error {
	if s.pg().IsClosed() {
		s.broken = true
		return errors.New("what-if connection lost")
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var errs []error
	if s.pg().TxStatus() != 'I' {
		if _, err := s.pg().Exec(cctx, marker+"ROLLBACK").ReadAll(); err != nil {
			errs = append(errs, fmt.Errorf("roll back what-if transaction: %w", err))
		}
	}
	for name := range s.pending {
		if err := s.pg().Deallocate(cctx, name); err != nil {
			errs = append(errs, fmt.Errorf("close prepared statement: %w", err))
			continue
		}
		delete(s.pending, name)
	}
	if len(errs) > 0 {
		s.broken = true
	}
	return errors.Join(errs...)
}

// hypoRequests make the session's hypothetical indexes the set (exact) or
// a superset of it (!exact): drop the extras and create what is missing,
// unless that would pass ResetEvery creates since the last reset — then
// reset HypoPG and create the set from scratch, which keeps the session far
// from HypoPG's fake-OID limit. Each request updates the bookkeeping when
// its answer arrives, so a failure half way leaves it true.
func (s *Session) hypoRequests(set indexSet, exact bool) []request {
	var missing []int
	for i, k := range set.keys {
		if _, ok := s.present[k]; !ok {
			missing = append(missing, i)
		}
	}
	var extra []string
	if exact {
		for k := range s.present {
			if !set.has(k) {
				extra = append(extra, k)
			}
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return nil
	}
	var reqs []request
	create := missing
	if s.sinceReset+len(missing) > s.e.opts.ResetEvery || (s.recreate && exact) {
		reqs = append(reqs, s.resetRequest())
		create = make([]int, len(set.keys))
		for i := range create {
			create[i] = i
		}
		extra = nil
	}
	for _, k := range extra {
		reqs = append(reqs, request{what: "drop hypothetical index",
			sql:    marker + "select " + s.fn("hypopg_drop_index") + "($1)",
			args:   []string{strconv.FormatUint(uint64(s.present[k]), 10)},
			onRows: func([][][]byte) error { delete(s.present, k); s.stats.HypoDrops++; return nil }})
	}
	for _, i := range create {
		spec, k := set.specs[i], set.keys[i]
		reqs = append(reqs, request{what: "create hypothetical index on " + spec.QualifiedTable(), permanent: ErrInvalidIndex,
			sql:  marker + "select indexrelid from " + s.fn("hypopg_create_index") + "($1)",
			args: []string{indexdef.CreateSQL(spec, indexdef.Name(spec), false)},
			onRows: func(rows [][][]byte) error {
				if len(rows) != 1 || len(rows[0]) != 1 {
					return fmt.Errorf("hypopg returned %d rows", len(rows))
				}
				oid, err := strconv.ParseUint(string(rows[0][0]), 10, 32)
				if err != nil {
					return err
				}
				s.present[k] = uint32(oid)
				s.sinceReset++
				s.stats.HypoCreates++
				return nil
			}})
	}
	return reqs
}

// resetRequest drops every hypothetical index of the session and restarts
// HypoPG's fake-OID counter.
func (s *Session) resetRequest() request {
	return request{what: "reset hypopg",
		sql: marker + "select " + s.fn("hypopg_reset") + "()",
		onRows: func([][][]byte) error {
			clear(s.present)
			s.sinceReset = 0
			s.stats.HypoResets++
			return nil
		}}
}

// indexSet is a validated, de-duplicated index set sorted by Key.
type indexSet struct {
	keys  []string
	specs []events.IndexSpec
}

func newIndexSet(indexes []events.IndexSpec) (indexSet, error) {
	byKey := make(map[string]events.IndexSpec, len(indexes))
	keys := make([]string, 0, len(indexes))
	for _, spec := range indexes {
		if err := indexdef.Validate(spec); err != nil {
			return indexSet{}, fmt.Errorf("%w: %w", ErrInvalidIndex, err)
		}
		k := spec.Key()
		if _, dup := byKey[k]; !dup {
			byKey[k] = spec
			keys = append(keys, k)
		}
	}
	keys = sortedUnique(keys)
	specs := make([]events.IndexSpec, len(keys))
	for i, k := range keys {
		specs[i] = byKey[k]
	}
	return indexSet{keys: keys, specs: specs}, nil
}

func (s indexSet) has(key string) bool {
	// Sets are small (a greedy selection's chosen indexes plus one).
	for _, k := range s.keys {
		if k == key {
			return true
		}
	}
	return false
}

// classify wraps a database error from step: timeouts wrap ErrTimeout,
// errors that say the input is wrong (SQLSTATE classes 42, 22, 0A, 25,
// …) wrap permanent (when not nil), anything else — connection trouble,
// cancellation — is returned as is, for the caller to retry.
func classify(step string, err error, permanent error) error {
	code := postgres.SQLState(err)
	switch {
	case code == "57014" || code == "55P03":
		return fmt.Errorf("%w: %s: %w", ErrTimeout, step, err)
	case permanent != nil && code != "" && (postgres.Classify(err) == postgres.Permanent || strings.HasPrefix(code, "25")):
		return fmt.Errorf("%w: %s: %w", permanent, step, err)
	}
	return fmt.Errorf("%s: %w", step, err)
}

// withoutDSN keeps connection errors from carrying the connection string.
func withoutDSN(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return errors.New(postgres.Describe(err))
	}
	return err
}
