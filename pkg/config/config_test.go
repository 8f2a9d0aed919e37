package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "indexpilot_config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsAreAdvisoryAndMemory(t *testing.T) {
	cfg, err := Load("", []string{"INDEXPILOT_DATABASE_URL=postgres://u:pw@h/db"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Features.AutoIndexer.Mode != ModeAdvisory {
		t.Errorf("default mode = %q, want advisory", cfg.Features.AutoIndexer.Mode)
	}
	if cfg.Bus.Transport != TransportMemory {
		t.Errorf("default transport = %q", cfg.Bus.Transport)
	}
	if len(cfg.Targets) != 1 || cfg.Targets[0].DSN != "postgres://u:pw@h/db" || cfg.Targets[0].Name != "main" {
		t.Errorf("default targets = %+v, want the control database as main", cfg.Targets)
	}
}

func TestEnvAppliesWithoutFileAndOverFile(t *testing.T) {
	env := []string{
		"INDEXPILOT_DATABASE_URL=postgres://x/db",
		"INDEXPILOT_FEATURES_AUTO_INDEXER_MODE=apply",
		"INDEXPILOT_COLLECTOR_INTERVAL=5s",
		"INDEXPILOT_BUS_TRANSPORT=kafka",
		"INDEXPILOT_BUS_KAFKA_BROKERS=a:9092, b:9092",
		"PATH=/bin",
	}
	cfg, err := Load("", env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Features.AutoIndexer.Mode != ModeApply || cfg.Collector.Interval != 5*time.Second {
		t.Errorf("env not applied without a file: mode=%q interval=%s", cfg.Features.AutoIndexer.Mode, cfg.Collector.Interval)
	}
	if got := strings.Join(cfg.Bus.Kafka.Brokers, "|"); got != "a:9092|b:9092" {
		t.Errorf("brokers = %q", got)
	}
	p := writeFile(t, "features:\n  auto_indexer:\n    mode: advisory\ncollector:\n  interval: 1m\n")
	cfg, err = Load(p, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Features.AutoIndexer.Mode != ModeApply {
		t.Errorf("env did not win over file: mode=%q", cfg.Features.AutoIndexer.Mode)
	}
	cfg, err = Load(p, []string{"INDEXPILOT_DATABASE_URL=postgres://x/db"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Collector.Interval != time.Minute || cfg.Features.AutoIndexer.Mode != ModeAdvisory {
		t.Errorf("file not applied: %+v", cfg.Collector)
	}
}

func TestStrictErrorsNameTheKeyPath(t *testing.T) {
	env := []string{"INDEXPILOT_DATABASE_URL=postgres://x/db"}
	cases := []struct {
		name, body, want string
	}{
		{"unknown nested", "features:\n  auto_indexer:\n    mdoe: apply\n", "features.auto_indexer.mdoe: unknown key"},
		{"unknown top", "colector:\n  interval: 1s\n", "colector: unknown key"},
		{"duplicate", "features:\n  auto_indexer:\n    mode: apply\n    mode: advisory\n", "features.auto_indexer.mode: duplicate key"},
		{"in list", "targets:\n  - name: a\n    dsn: postgres://a\n    port: 1\n", "targets[0].port: unknown key"},
		{"bad mode", "features:\n  auto_indexer:\n    mode: yolo\n", "features.auto_indexer.mode: \"yolo\""},
		{"bad duration", "collector:\n  interval: soon\n", "soon"},
		{"dup target", "targets:\n  - {name: a, dsn: x}\n  - {name: a, dsn: y}\n", "targets[1].name: \"a\" is listed twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(writeFile(t, c.body), env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("config:\n%s\ngot error %v, want one containing %q", c.body, err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestEnvErrors(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{"INDEXPILOT_COLLECTOR_INTERVL=5s", "INDEXPILOT_COLLECTOR_INTERVL: names no setting"},
		{"INDEXPILOT_COLLECTOR_INTERVAL=often", "INDEXPILOT_COLLECTOR_INTERVAL: \"often\" is not a duration"},
		{"INDEXPILOT_TARGETS=justaname", "INDEXPILOT_TARGETS: entry 1 is not name=dsn"},
	} {
		_, err := Load("", []string{"INDEXPILOT_DATABASE_URL=postgres://x/db", c.env})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("env %s: got %v, want %q", c.env, err, c.want)
		}
	}
	_, err := Load("", []string{})
	if err == nil || !strings.Contains(err.Error(), "INDEXPILOT_DATABASE_URL") {
		t.Errorf("missing database url: got %v", err)
	}
	cfg, err := Load("", []string{"INDEXPILOT_DATABASE_URL=postgres://x/db", "INDEXPILOT_TARGETS=a=postgres://a/a;b=postgres://b/b"})
	if err != nil || len(cfg.Targets) != 2 || cfg.Targets[1].Name != "b" {
		t.Errorf("targets from env: %+v, %v", cfg.Targets, err)
	}
}

func TestMissingNamedFileIsAnError(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), []string{"INDEXPILOT_DATABASE_URL=postgres://x/db"})
	if err == nil {
		t.Fatal("a named config file that does not exist was accepted")
	}
}

func TestRedaction(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://bob:s3cret@db:5432/app?sslmode=disable": "postgres://bob:REDACTED@db:5432/app?sslmode=disable",
		"host=db user=bob password=s3cret dbname=app":       "host=db user=bob password=REDACTED dbname=app",
		"host=db password='a b c' dbname=app":               "host=db password=REDACTED dbname=app",
		"postgres://bob@db/app":                             "postgres://bob@db/app",
	} {
		if got := RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
	cfg, err := Load("", []string{"INDEXPILOT_DATABASE_URL=postgres://bob:s3cret@db/app"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := cfg.Redacted().YAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "s3cret") {
		t.Errorf("redacted config shows the password:\n%s", b)
	}
	if !strings.Contains(cfg.DatabaseURL, "s3cret") {
		t.Error("Redacted changed the original config")
	}
}
