// Package cpu measures the database host's CPU use for the gatekeeper's
// throttle, on the database side: /proc/stat read through the server
// (pg_read_file) or active backends against the core count, a Prometheus
// (node_exporter) query, or /proc/stat of this host when co-located.
package cpu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Times is the aggregate "cpu" line of /proc/stat: busy and total jiffies.
type Times struct{ Busy, Total uint64 }

// ParseProcStat reads the aggregate cpu line of a /proc/stat text.
func ParseProcStat(text string) (Times, error) {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		var t Times
		for i, s := range f[1:] {
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return Times{}, fmt.Errorf("parse /proc/stat: %w", err)
			}
			t.Total += v
			// user nice system idle iowait irq softirq steal ...: idle and
			// iowait are not busy.
			if i != 3 && i != 4 {
				t.Busy += v
			}
		}
		return t, nil
	}
	return Times{}, errors.New("parse /proc/stat: no cpu line")
}

// Percent is the busy share between two readings.
func Percent(a, b Times) (float64, error) {
	if b.Total <= a.Total {
		return 0, errors.New("cpu counters did not advance")
	}
	return 100 * float64(b.Busy-a.Busy) / float64(b.Total-a.Total), nil
}

func sample(ctx context.Context, every time.Duration, read func(context.Context) (string, error)) (float64, error) {
	s1, err := read(ctx)
	if err != nil {
		return 0, err
	}
	a, err := ParseProcStat(s1)
	if err != nil {
		return 0, err
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(every):
	}
	s2, err := read(ctx)
	if err != nil {
		return 0, err
	}
	b, err := ParseProcStat(s2)
	if err != nil {
		return 0, err
	}
	return Percent(a, b)
}

// Local reads this host's /proc/stat: right only when the gatekeeper runs
// on the database host.
type Local struct {
	Path  string // "" means /proc/stat
	Every time.Duration
}

// Percent measures CPU use over Every.
func (l Local) Percent(ctx context.Context) (float64, error) {
	path := l.Path
	if path == "" {
		path = "/proc/stat"
	}
	return sample(ctx, l.Every, func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		return string(b), err
	})
}

// Pg measures through the target's server: /proc/stat via pg_read_file
// where the role may (superuser or pg_read_server_files), otherwise the
// active backends over Cores.
type Pg struct {
	Cores int
	Every time.Duration
}

// Percent measures the database host's CPU use through pool.
func (p Pg) Percent(ctx context.Context, pool *pgxpool.Pool) (float64, string, error) {
	var allowed bool
	err := pool.QueryRow(ctx, `/* indexpilot:gatekeeper */
select coalesce(rolsuper, false) or pg_has_role(current_user, 'pg_read_server_files', 'member')
  from pg_roles where rolname = current_user`).Scan(&allowed)
	if err != nil {
		return 0, "", fmt.Errorf("check pg_read_file permission: %w", err)
	}
	if allowed {
		pct, err := sample(ctx, p.Every, func(ctx context.Context) (string, error) {
			var s string
			err := pool.QueryRow(ctx, `/* indexpilot:gatekeeper */ select pg_read_file('/proc/stat')`).Scan(&s)
			return s, err
		})
		if err == nil {
			return pct, "proc_stat", nil
		}
	}
	var active int
	if err := pool.QueryRow(ctx, `/* indexpilot:gatekeeper */
select count(*) from pg_stat_activity
 where state = 'active' and backend_type = 'client backend' and pid <> pg_backend_pid()`).Scan(&active); err != nil {
		return 0, "", fmt.Errorf("count active backends: %w", err)
	}
	cores := p.Cores
	if cores < 1 {
		cores = 1
	}
	pct := 100 * float64(active) / float64(cores)
	if pct > 100 {
		pct = 100
	}
	return pct, "active_backends", nil
}

// Prometheus runs an instant query whose first result is the CPU busy
// percentage (e.g. 100 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m]))*100).
type Prometheus struct {
	URL    string
	Client *http.Client
}

// Percent runs the query.
func (p Prometheus) Percent(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return 0, fmt.Errorf("prometheus query: %w", err)
	}
	c := p.Client
	if c == nil {
		c = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, errors.New("prometheus query: request failed")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("prometheus query: status %d", resp.StatusCode)
	}
	return ParsePrometheus(resp.Body)
}

// ParsePrometheus reads the first sample of an instant-query answer.
func ParsePrometheus(r interface{ Read([]byte) (int, error) }) (float64, error) {
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(r).Decode(&body); err != nil {
		return 0, fmt.Errorf("prometheus answer: %w", err)
	}
	if body.Status != "success" || len(body.Data.Result) == 0 || len(body.Data.Result[0].Value) != 2 {
		return 0, errors.New("prometheus answer: no sample")
	}
	s, ok := body.Data.Result[0].Value[1].(string)
	if !ok {
		return 0, errors.New("prometheus answer: sample is not a string")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("prometheus answer: %w", err)
	}
	return v, nil
}
