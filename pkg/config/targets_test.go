package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTargetOverrides(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	body := "database_url: postgres://h/db\ncollector:\n  interval: 30s\ntargets:\n  - name: a\n    dsn: postgres://h/a\n    interval: 5s\n    app_stats: poll\n  - name: b\n    dsn: postgres://h/b\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(p, []string{})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	a, _ := cfg.Target("a")
	b, _ := cfg.Target("b")
	if got := cfg.Collector.Effective(a); got.Interval != 5*time.Second || got.QueryTimeout != 10*time.Second {
		t.Errorf("effective settings of a = %+v, want interval 5s and the default timeout", got)
	}
	if got := cfg.Collector.Effective(b); got.Interval != 30*time.Second {
		t.Errorf("effective interval of b = %s, want the collector's 30s", got.Interval)
	}

	if a.AppStatsMode() != AppStatsPoll || b.AppStatsMode() != AppStatsAuto {
		t.Errorf("app_stats modes = %q, %q", a.AppStatsMode(), b.AppStatsMode())
	}

	bad := filepath.Join(dir, "bad.yaml")
	body = "database_url: postgres://h/db\ntargets:\n  - name: a\n    dsn: postgres://h/a\n    interval: -5s\n    intreval: 1s\n"
	if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad, []string{}); err == nil || !strings.Contains(err.Error(), "targets[0].intreval: unknown key") {
		t.Errorf("unknown per-target key: err = %v", err)
	}
	body = "database_url: postgres://h/db\ntargets:\n  - name: a\n    dsn: postgres://h/a\n    interval: -5s\n    app_stats: stream\n"
	if err := os.WriteFile(bad, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad, []string{})
	if err == nil || !strings.Contains(err.Error(), "targets[0].interval: -5s must not be negative") ||
		!strings.Contains(err.Error(), `targets[0].app_stats: "stream" is not auto`) {
		t.Errorf("invalid overrides: err = %v", err)
	}
}
