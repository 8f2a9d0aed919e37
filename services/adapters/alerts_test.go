package adapters_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/indexpilot/indexpilot/services/adapters"
)

// repoFile is a file of the repository, from this package's directory.
func repoFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(path)))
	require.NoError(t, err)
	return b
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// TestAlertRulesPromtool runs `promtool test rules` on
// infra/prometheus/alerts_test.yml: every alert fires on synthetic series
// and stays quiet on others. promtool is $PROMTOOL or on PATH (.ci/run
// fetches Debian's); without it the test skips, or fails under CI=true.
func TestAlertRulesPromtool(t *testing.T) {
	bin := os.Getenv("PROMTOOL")
	if bin == "" {
		bin, _ = exec.LookPath("promtool")
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found (set PROMTOOL or put it on PATH)")
		}
		t.Skip("promtool not found (set PROMTOOL or put it on PATH)")
	}
	dir := filepath.Join("..", "..", "infra", "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// TestAlertRulesAgree checks that the PrometheusRule of infra/k8s carries
// the groups of infra/prometheus/alerts.yml unchanged, that the compose
// Prometheus loads alerts.yml, that every expression names only series the
// adapters export, and that every alert has a runbook in
// docs/monitoring.md.
func TestAlertRulesAgree(t *testing.T) {
	var file map[string]any
	require.NoError(t, yaml.Unmarshal(repoFile(t, "infra/prometheus/alerts.yml"), &file))
	var k8s struct {
		Kind string         `yaml:"kind"`
		Spec map[string]any `yaml:"spec"`
	}
	require.NoError(t, yaml.Unmarshal(repoFile(t, "infra/k8s/monitoring/prometheusrule.yaml"), &k8s))
	require.Equal(t, "PrometheusRule", k8s.Kind)
	require.Equal(t, file, k8s.Spec, "infra/k8s/monitoring/prometheusrule.yaml spec differs from infra/prometheus/alerts.yml")

	assert.Contains(t, string(repoFile(t, "docker-compose.yml")), "./infra/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro")
	assert.Contains(t, string(repoFile(t, "infra/prometheus/prometheus.yml")), "- /etc/prometheus/alerts.yml")

	var rules ruleFile
	require.NoError(t, yaml.Unmarshal(repoFile(t, "infra/prometheus/alerts.yml"), &rules))
	// The series the adapters export that rules may use: gauges as named,
	// counters with _total.
	exported := map[string]bool{}
	for _, g := range []string{adapters.MetricMutationLogRows, adapters.MetricMutationLogBytes, adapters.MetricMutationLogOldest,
		adapters.MetricBuildsFailed24h, adapters.MetricBuildsReverted24h, adapters.MetricPollAge, adapters.MetricPollInterval,
		adapters.MetricBypassActive, adapters.MetricEmergencyStop, adapters.MetricRecommendations, adapters.MetricEventAge,
		adapters.MetricConsumerLag} {
		exported["indexpilot_"+g] = true
	}
	for _, c := range []string{adapters.MetricEventsProduced, adapters.MetricEventsConsumed, adapters.MetricCandidates,
		adapters.MetricDecisions, adapters.MetricGateHolds, adapters.MetricBuilds, adapters.MetricValidations, adapters.MetricReverts} {
		exported["indexpilot_"+c+"_total"] = true
	}
	docs := string(repoFile(t, "docs/monitoring.md"))
	runbooks := docs[strings.Index(docs, "### Alert runbooks"):]
	series := regexp.MustCompile(`indexpilot_[a-z0-9_]+`)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			require.NotEmpty(t, r.Alert)
			names := series.FindAllString(r.Expr, -1)
			assert.NotEmpty(t, names, "%s names no IndexPilot series", r.Alert)
			for _, name := range names {
				assert.True(t, exported[name], "%s uses %s, which the adapters do not export", r.Alert, name)
			}
			assert.Contains(t, runbooks, "`"+r.Alert+"`", "no runbook for %s in docs/monitoring.md", r.Alert)
		}
	}
	assert.Equal(t, 8, n, "alerts in alerts.yml")
}
