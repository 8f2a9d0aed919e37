package bypass

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// NotifyChannel is the PostgreSQL notification channel of run-time bypass
// changes on the control database. Every write of indexpilot.bypass_state
// notifies it in the same transaction; the payload is only the change
// number (nothing secret, nothing to trust): a listener re-reads the table.
const NotifyChannel = "indexpilot_bypass"

// ListenerApplicationName is the application_name of the LISTEN session,
// so that it can be told apart in pg_stat_activity.
const ListenerApplicationName = "indexpilot bypass listener"

// Back-off of the LISTEN connection after it drops or cannot be opened.
const (
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 10 * time.Second
)

// listener keeps the states of one process current from NOTIFY on one
// control database. A process holds one LISTEN connection per control
// pool, however many stages watch the bypass (the all-in-one process runs
// four): the connection is opened by the first Watch and closed when the
// last one ends. It is a dedicated connection, not one of the pool's.
type listener struct {
	cfg  *pgx.ConnConfig
	log  *slog.Logger
	stop context.CancelFunc

	mu     sync.Mutex
	states map[*State]int
}

var listeners = struct {
	mu sync.Mutex
	m  map[*pgxpool.Pool]*listener
}{m: map[*pgxpool.Pool]*listener{}}

// follow keeps st current from notifications on pool's database until ctx
// ends.
func follow(ctx context.Context, pool *pgxpool.Pool, st *State, log *slog.Logger) {
	listeners.mu.Lock()
	l := listeners.m[pool]
	if l == nil {
		cfg := pool.Config().ConnConfig.Copy()
		cfg.RuntimeParams["application_name"] = ListenerApplicationName
		lctx, stop := context.WithCancel(context.Background())
		l = &listener{cfg: cfg, log: log, stop: stop, states: map[*State]int{}}
		listeners.m[pool] = l
		go l.run(lctx)
	}
	l.mu.Lock()
	l.states[st]++
	l.mu.Unlock()
	listeners.mu.Unlock()

	go func() {
		<-ctx.Done()
		listeners.mu.Lock()
		defer listeners.mu.Unlock()
		l.mu.Lock()
		if l.states[st]--; l.states[st] <= 0 {
			delete(l.states, st)
		}
		last := len(l.states) == 0
		l.mu.Unlock()
		if last {
			l.stop()
			delete(listeners.m, pool)
		}
	}()
}

// run listens until ctx ends, reconnecting with back-off. After every
// (re)connection it re-reads the table, so that a change made while it was
// not listening is not missed.
func (l *listener) run(ctx context.Context) {
	delay := listenRetryMin
	for ctx.Err() == nil {
		err := l.session(ctx, func() { delay = listenRetryMin })
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("bypass listener disconnected; reconnecting", "error", errString(err), "retry_in", delay.String())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(2*delay, listenRetryMax)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	// pgx's errors name the host and user at most, never the password.
	return err.Error()
}

// session runs one LISTEN connection until it fails or ctx ends.
func (l *listener) session(ctx context.Context, listening func()) error {
	conn, err := pgx.ConnectConfig(ctx, l.cfg)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, marker+"listen "+pgx.Identifier{NotifyChannel}.Sanitize()); err != nil {
		return err
	}
	listening()
	for {
		if err := l.reload(ctx, conn); err != nil {
			return err
		}
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return err
		}
		// Several changes committed together need one re-read.
		for {
			wctx, cancel := context.WithTimeout(ctx, time.Millisecond)
			_, err := conn.WaitForNotification(wctx)
			cancel()
			if err != nil {
				break
			}
		}
	}
}

// reload reads the table on the listening connection and applies it to
// every state of this process.
func (l *listener) reload(ctx context.Context, conn *pgx.Conn) error {
	sws, err := LoadRuntime(ctx, conn)
	if err != nil {
		return err
	}
	l.mu.Lock()
	states := make([]*State, 0, len(l.states))
	for st := range l.states {
		states = append(states, st)
	}
	l.mu.Unlock()
	for _, st := range states {
		st.Apply(sws...)
	}
	return nil
}
