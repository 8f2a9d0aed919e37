package whatif

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// request is one message group of a pipelined round trip, and what to do
// with its answer. Exactly one of sql, prepare, deallocate or sync is set.
//
// Requests between two syncs form a segment: when one of them fails the
// server skips the rest of the segment and resumes after the sync, so a
// later segment (closing a prepared statement) still runs. Each segment is
// one implicit transaction.
type request struct {
	// what names the step in errors.
	what string
	// permanent is the sentinel a permanent server error of this step
	// wraps (ErrNotEvaluable, ErrInvalidIndex), or nil.
	permanent error

	sql  string
	args []string // text-format parameters; their types are inferred
	// binds, when set, replace args: text-format values (nil is NULL) of
	// parameters typed by oids.
	binds [][]byte
	oids  []uint32
	// onError, when set, receives a server error of this request instead
	// of it becoming run's error (the segment is still skipped).
	onError func(error)
	// onRows receives the rows of a sql request (text format).
	onRows func(rows [][][]byte) error

	prepare, prepareName string
	prepareOIDs          []uint32
	onPrepared           func(*pgconn.StatementDescription)

	deallocate string
	onClosed   func()

	sync bool
}

var syncRequest = request{sync: true}

// run sends reqs in one flush and reads every answer. It returns the first
// error (classified); a failed request skips the rest of its segment only.
// A transport error stops everything and leaves the connection closed.
func (s *Session) run(ctx context.Context, reqs []request) error {
	if err := ctx.Err(); err != nil {
		// Nothing sent: the connection is still fine.
		return fmt.Errorf("%s: %w", reqs[0].what, err)
	}
	p := s.pg().StartPipeline(ctx)
	for _, r := range reqs {
		switch {
		case r.sync:
			p.SendPipelineSync()
		case r.prepare != "":
			p.SendPrepare(r.prepareName, r.prepare, r.prepareOIDs)
		case r.deallocate != "":
			p.SendDeallocate(r.deallocate)
		case r.binds != nil:
			p.SendQueryParams(r.sql, r.binds, r.oids, nil, nil)
		default:
			var args [][]byte
			for _, a := range r.args {
				args = append(args, []byte(a))
			}
			p.SendQueryParams(r.sql, args, nil, nil, nil)
		}
	}
	if err := p.Flush(); err != nil {
		_ = p.Close()
		s.broken = s.broken || s.pg().IsClosed()
		return fmt.Errorf("send what-if requests: %w", err)
	}
	var first error
	fail := func(i int, err error) int {
		if reqs[i].onError != nil {
			reqs[i].onError(err)
		} else if first == nil {
			first = classify(reqs[i].what, err, reqs[i].permanent)
		}
		// The server skips to the segment's sync; so do we.
		for i < len(reqs) && !reqs[i].sync {
			i++
		}
		return i
	}
	for i := 0; i < len(reqs); {
		res, err := p.GetResults()
		if err != nil {
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				_ = p.Close()
				s.broken = true
				return classify(reqs[i].what, err, nil)
			}
			i = fail(i, err)
			continue
		}
		switch v := res.(type) {
		case *pgconn.ResultReader:
			out := v.Read()
			if out.Err != nil {
				i = fail(i, out.Err)
				continue
			}
			if reqs[i].onRows != nil {
				if err := reqs[i].onRows(out.Rows); err != nil && first == nil {
					first = fmt.Errorf("%s: %w", reqs[i].what, err)
				}
			}
		case *pgconn.StatementDescription:
			if reqs[i].onPrepared != nil {
				reqs[i].onPrepared(v)
			}
		case *pgconn.CloseComplete:
			if reqs[i].onClosed != nil {
				reqs[i].onClosed()
			}
		case *pgconn.PipelineSync:
		case nil:
			_ = p.Close()
			s.broken = true
			return fmt.Errorf("%s: pipeline ended early", reqs[i].what)
		}
		i++
	}
	if err := p.Close(); err != nil {
		s.broken = s.broken || s.pg().IsClosed()
		if first == nil {
			first = fmt.Errorf("close what-if pipeline: %w", err)
		}
	}
	return first
}
