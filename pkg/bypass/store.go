package bypass

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/bus"
	"github.com/indexpilot/indexpilot/pkg/metadata"
	"github.com/indexpilot/indexpilot/pkg/postgres"
)

const marker = "/* indexpilot:bypass */ "

// LoadRuntime reads every persisted run-time switch.
func LoadRuntime(ctx context.Context, q postgres.Querier) ([]Switch, error) {
	rows, err := q.Query(ctx, marker+`select level, name, disabled, reason, actor, change_id, changed_at, expires_at
  from indexpilot.bypass_state order by change_id`)
	if err != nil {
		return nil, fmt.Errorf("read bypass state: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Switch, error) {
		var s Switch
		var l string
		err := r.Scan(&l, &s.Name, &s.Disabled, &s.Reason, &s.Actor, &s.ChangeID, &s.ChangedAt, &s.ExpiresAt)
		s.Level, s.Source = Level(l), SourceRuntime
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("read bypass state: %w", err)
	}
	return out, nil
}

// Change is one run-time change requested by an operator.
type Change struct {
	Level    Level
	Name     string
	Disabled bool
	Reason   string
	Actor    string
	// For, when positive on a disabling change, makes it recover by itself
	// after that long.
	For time.Duration
}

// Validate checks a change before it is applied.
func (c Change) Validate() error {
	if err := ValidName(c.Level, c.Name); err != nil {
		return err
	}
	if strings.TrimSpace(c.Reason) == "" {
		return errors.New("a bypass change needs a reason")
	}
	if c.For < 0 || (c.For > 0 && !c.Disabled) {
		return errors.New("a recovery time applies only to a disabling change and must be positive")
	}
	return nil
}

// Event is the control event of a persisted switch.
func (s Switch) Event() *events.BypassChanged {
	return &events.BypassChanged{
		ChangeID: events.BypassChangeID(s.ChangeID), Level: string(s.Level), Name: s.Name, Disabled: s.Disabled,
		Reason: s.Reason, Actor: s.Actor, ChangedAt: s.ChangedAt.UTC().Truncate(time.Microsecond), ExpiresAt: s.ExpiresAt,
	}
}

func fromEvent(e *events.BypassChanged) (Switch, error) {
	var id int64
	if _, err := fmt.Sscan(e.ChangeID, &id); err != nil {
		return Switch{}, fmt.Errorf("bypass change id %q: %w", e.ChangeID, err)
	}
	return Switch{Level: Level(e.Level), Name: e.Name, Disabled: e.Disabled, Reason: e.Reason, Actor: e.Actor,
		Source: SourceRuntime, ChangeID: id, ChangedAt: e.ChangedAt, ExpiresAt: e.ExpiresAt}, nil
}

// upsert writes s (without its ChangeID) with the next change number and
// logs it in mutation_log, in tx.
func upsert(ctx context.Context, tx pgx.Tx, s Switch, action string, prev *Switch) (Switch, error) {
	err := tx.QueryRow(ctx, marker+`insert into indexpilot.bypass_state
  (level, name, disabled, reason, actor, change_id, changed_at, expires_at)
values ($1, $2, $3, $4, $5, nextval('indexpilot.bypass_change_seq'), $6, $7)
on conflict (level, name) do update
   set disabled = excluded.disabled, reason = excluded.reason, actor = excluded.actor,
       change_id = excluded.change_id, changed_at = excluded.changed_at, expires_at = excluded.expires_at
returning change_id`, string(s.Level), s.Name, s.Disabled, s.Reason, s.Actor, s.ChangedAt, s.ExpiresAt).Scan(&s.ChangeID)
	if err != nil {
		return Switch{}, fmt.Errorf("write bypass state: %w", err)
	}
	outcome := "enabled"
	if s.Disabled {
		outcome = "disabled"
	}
	ev := map[string]any{"level": s.Level, "name": s.Name, "actor": s.Actor, "change_id": s.ChangeID,
		"changed_at": s.ChangedAt, "expires_at": s.ExpiresAt}
	if prev != nil {
		ev["previous"] = prev
	}
	if _, err := metadata.AppendLog(ctx, tx, metadata.Entry{
		Stage: "bypass", Action: action, Outcome: outcome, Reason: s.Reason, Evidence: ev,
		EventID: s.Event().EventID(),
	}); err != nil {
		return Switch{}, err
	}
	// Delivered to every listener when tx commits, never before: the
	// payload is only the change number, a listener re-reads the table.
	if _, err := tx.Exec(ctx, marker+"select pg_notify($1, $2)", NotifyChannel, fmt.Sprint(s.ChangeID)); err != nil {
		return Switch{}, fmt.Errorf("notify bypass change: %w", err)
	}
	return s, nil
}

// Set applies a run-time change: it persists it with its mutation_log row
// and a NOTIFY on NotifyChannel in one transaction (every running instance
// LISTENs on the control database and re-reads the table at once), then
// publishes it on the control topic when b is not nil. Instances that miss
// both read the table within features.bypass.refresh_interval. at is the
// change time.
func Set(ctx context.Context, pool *pgxpool.Pool, b *bus.Bus, c Change, at time.Time) (Switch, error) {
	if err := c.Validate(); err != nil {
		return Switch{}, err
	}
	at = at.UTC().Truncate(time.Microsecond)
	s := Switch{Level: c.Level, Name: c.Name, Disabled: c.Disabled, Reason: c.Reason, Actor: c.Actor,
		Source: SourceRuntime, ChangedAt: at}
	if c.For > 0 {
		exp := at.Add(c.For)
		s.ExpiresAt = &exp
	}
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var prev *Switch
		all, err := LoadRuntime(ctx, tx)
		if err != nil {
			return err
		}
		for i := range all {
			if all[i].Level == c.Level && all[i].Name == c.Name {
				prev = &all[i]
			}
		}
		s, err = upsert(ctx, tx, s, "bypass_set", prev)
		return err
	})
	if err != nil {
		return Switch{}, fmt.Errorf("set bypass %s: %w", c.Level, err)
	}
	if b != nil {
		if err := b.Publish(ctx, "bypass", "", s.Event()); err != nil {
			return s, fmt.Errorf("bypass persisted but not published (instances catch up on refresh): %w", err)
		}
	}
	return s, nil
}

// ExpireDue ends every run-time switch whose recovery time has passed at
// now: each becomes enabled with a new change number and a mutation_log
// row. Several instances may call it at once; each expired switch is ended
// once. It returns the switches it ended, to publish.
func ExpireDue(ctx context.Context, pool *pgxpool.Pool, now time.Time) ([]Switch, error) {
	var out []Switch
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, marker+`select level, name, disabled, reason, actor, change_id, changed_at, expires_at
  from indexpilot.bypass_state where disabled and expires_at <= $1 for update skip locked`, now)
		if err != nil {
			return err
		}
		due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Switch, error) {
			var s Switch
			var l string
			err := r.Scan(&l, &s.Name, &s.Disabled, &s.Reason, &s.Actor, &s.ChangeID, &s.ChangedAt, &s.ExpiresAt)
			s.Level, s.Source = Level(l), SourceRuntime
			return s, err
		})
		if err != nil {
			return err
		}
		for i := range due {
			prev := due[i]
			s := Switch{Level: prev.Level, Name: prev.Name, Disabled: false, Actor: "indexpilot",
				Reason: "recovered automatically: " + prev.Reason, Source: SourceRuntime,
				ChangedAt: now.UTC().Truncate(time.Microsecond)}
			s, err := upsert(ctx, tx, s, "bypass_recover", &prev)
			if err != nil {
				return err
			}
			out = append(out, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("expire bypass switches: %w", err)
	}
	return out, nil
}
