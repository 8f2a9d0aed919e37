package collector

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/indexpilot/indexpilot/pkg/postgres"
	"github.com/indexpilot/indexpilot/services/collector/internal/delta"
	"github.com/indexpilot/indexpilot/services/collector/internal/pgstat"
)

// sharedReads shares pg_stat_statements reads among the targets of one
// collector that are databases of the same server, connected as the same
// role. pg_stat_statements cannot be read for one database only: every
// read walks every entry of the server (up to pg_stat_statements.max), and
// a read with texts reads the whole query text file, so 100 targets on one
// server reading it separately would cost 100 reads of the whole server per
// interval. A group reads the counters of all databases once per poll
// cycle, and the texts of all databases only when a target meets a query id
// the last texts read did not have, and hands each target its own rows.
//
// The reads go through one member's pool (the reader), so that the
// collector's own statements, which are new query ids too, appear in one
// database only.
type sharedReads struct {
	mu     sync.Mutex
	groups map[string]*readGroup
}

func newSharedReads() *sharedReads { return &sharedReads{groups: map[string]*readGroup{}} }

// readGroup is the targets of one server and role.
type readGroup struct {
	// members is the number of pollers in the group (guarded by
	// sharedReads.mu).
	members int
	// turn serialises the group's reads: a poller that finds a read in
	// flight waits for it and then uses its result. It guards the fields
	// below.
	turn chan struct{}
	// reader is the member whose pool and source the reads use (nil: the
	// next caller becomes the reader).
	reader     any
	readerPool postgres.Querier
	readerSrc  pgstat.Source
	// last is the last counters read; lastAll says whether it holds every
	// database or lastDB's only.
	last    *pgstat.Counters
	lastAll bool
	lastDB  uint32
	// texts is the last texts read (never modified once read), textsAt its
	// time.
	texts   map[uint32]map[int64]string
	textsAt time.Time
}

// readKey is the server and role of a DSN ("" when it cannot be parsed:
// the target then reads alone).
func readKey(dsn string) string {
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s\x00%d\x00%s", c.Host, c.Port, c.User)
}

// join adds member to the group of key and returns the group and the
// function that takes it out again.
func (s *sharedReads) join(key string, member any) (*readGroup, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[key]
	if g == nil {
		g = &readGroup{turn: make(chan struct{}, 1)}
		s.groups[key] = g
	}
	g.members++
	return g, func() {
		g.turn <- struct{}{}
		if g.reader == member {
			g.reader, g.readerPool = nil, nil
		}
		<-g.turn
		s.mu.Lock()
		defer s.mu.Unlock()
		g.members--
		if g.members == 0 {
			delete(s.groups, key)
		}
	}
}

func (s *sharedReads) shared(g *readGroup) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return g.members > 1
}

// lock takes the group's turn.
func (g *readGroup) lock(ctx context.Context) error {
	select {
	case g.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *readGroup) unlock() { <-g.turn }

// pool returns the reader's pool and source, making member (with q and
// src) the reader when there is none. Called with the turn held.
func (g *readGroup) pool(member any, q postgres.Querier, src pgstat.Source) (postgres.Querier, pgstat.Source) {
	if g.reader == nil {
		g.reader, g.readerPool, g.readerSrc = member, q, src
	}
	return g.readerPool, g.readerSrc
}

// read returns counters read after the time after and less than fresh
// before now(): the group's last read if it qualifies, else a new read. A
// failed read is not kept, and the reader is replaced: the next poller
// reads again through its own pool.
func (s *sharedReads) read(ctx context.Context, g *readGroup, member any, q postgres.Querier, src pgstat.Source, after time.Time, fresh time.Duration, now func() time.Time) (pgstat.Counters, error) {
	if err := g.lock(ctx); err != nil {
		return pgstat.Counters{}, err
	}
	defer g.unlock()
	at := now().UTC().Truncate(time.Microsecond)
	if l := g.last; l != nil && l.At.After(after) && at.Sub(l.At) < fresh && (g.lastAll || g.lastDB == src.DBID) {
		return *l, nil
	}
	all := s.shared(g)
	rq, rsrc := q, src
	if all {
		rq, rsrc = g.pool(member, q, src)
	}
	c, err := pgstat.ReadCounters(ctx, rq, rsrc, at, all)
	if err != nil {
		if all {
			g.reader = nil
		}
		return c, err
	}
	g.last, g.lastAll, g.lastDB = &c, all, src.DBID
	return c, nil
}

// sample is src's sample of c with texts from the group's texts, read
// again (for every database) when an id is missing and the last texts read
// is older than c.
func (s *sharedReads) sample(ctx context.Context, g *readGroup, member any, q postgres.Querier, src pgstat.Source, c pgstat.Counters) (delta.Sample, error) {
	smp := delta.Sample{At: c.At, StatsReset: c.StatsReset}
	rows, ids := c.Rows(src.DBID)
	if err := g.lock(ctx); err != nil {
		return smp, err
	}
	texts := g.texts[src.DBID]
	missing := false
	for _, id := range ids {
		if _, ok := texts[id]; !ok {
			missing = true
			break
		}
	}
	if missing && g.textsAt.Before(c.At) {
		at := time.Now()
		rq, rsrc := g.pool(member, q, src)
		all, err := pgstat.ReadAllTexts(ctx, rq, rsrc)
		if err != nil {
			g.reader = nil
			g.unlock()
			return smp, err
		}
		g.texts, g.textsAt = all, at
		texts = all[src.DBID]
	}
	g.unlock()
	for i := range rows {
		// A statement without a text (evicted meanwhile) is left out of
		// this poll, as unreadable.
		rows[i].Query = texts[ids[i]]
	}
	smp.Rows = rows
	return smp, nil
}
