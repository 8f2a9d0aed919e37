package integration

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/indexpilot/indexpilot/events"
	"github.com/indexpilot/indexpilot/pkg/config"
)

// TestComposeFileIsConsistent checks docker-compose.yml without a Docker
// engine: it parses, every build context and Dockerfile exists, every
// stage image builds a command that exists, and the topic script creates
// every event type's topic.
func TestComposeFileIsConsistent(t *testing.T) {
	root := filepath.Join("..")
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	require.NoError(t, err)
	var doc struct {
		Services map[string]struct {
			Image string `yaml:"image"`
			Build *struct {
				Context    string            `yaml:"context"`
				Dockerfile string            `yaml:"dockerfile"`
				Args       map[string]string `yaml:"args"`
			} `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &doc))
	for _, want := range []string{"postgres", "kafka", "collector", "scorer", "gatekeeper", "executor"} {
		require.Contains(t, doc.Services, want)
	}
	for name, svc := range doc.Services {
		if svc.Build == nil {
			require.NotEmpty(t, svc.Image, "service %s has neither build nor image", name)
			continue
		}
		ctxDir := filepath.Join(root, svc.Build.Context)
		require.DirExists(t, ctxDir, "service %s", name)
		require.FileExists(t, filepath.Join(ctxDir, svc.Build.Dockerfile), "service %s", name)
		if st := svc.Build.Args["STAGE"]; st != "" {
			require.DirExists(t, filepath.Join(root, "services", st, "cmd", st), "service %s builds a missing command", name)
		}
	}
	for _, name := range []string{"collector", "scorer", "gatekeeper", "executor"} {
		env := doc.Services[name].Environment
		require.Equal(t, "kafka", env["INDEXPILOT_BUS_TRANSPORT"], "service %s", name)
		require.NotEmpty(t, env["INDEXPILOT_DATABASE_URL"], "service %s", name)
	}
	script, err := os.ReadFile(filepath.Join(root, "infra", "kafka", "create-topics.sh"))
	require.NoError(t, err)
	for _, ty := range events.Types {
		require.True(t, strings.Contains(string(script), string(ty)), "create-topics.sh does not create %s", events.Topic(ty))
	}
}

// TestMonitoringComposeIsConsistent checks the monitoring half of
// docker-compose.yml: the adapters are built from an existing command and
// expose the port Prometheus scrapes; every file mounted into Prometheus
// and Grafana exists and parses; the dashboard only queries series the
// adapters export.
func TestMonitoringComposeIsConsistent(t *testing.T) {
	root := filepath.Join("..")
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	require.NoError(t, err)
	var doc struct {
		Services map[string]struct {
			Image string `yaml:"image"`
			Build *struct {
				Args map[string]string `yaml:"args"`
			} `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(b, &doc))
	for _, want := range []string{"adapters", "prometheus", "grafana"} {
		require.Contains(t, doc.Services, want)
	}
	ad := doc.Services["adapters"]
	require.NotNil(t, ad.Build)
	require.Equal(t, "adapters", ad.Build.Args["STAGE"])
	require.DirExists(t, filepath.Join(root, "services", "adapters", "cmd", "adapters"))
	require.Equal(t, "true", ad.Environment["INDEXPILOT_ADAPTERS_PROMETHEUS_ENABLED"])
	require.Equal(t, ":9464", ad.Environment["INDEXPILOT_ADAPTERS_LISTEN"])
	require.Equal(t, "kafka", ad.Environment["INDEXPILOT_BUS_TRANSPORT"], "the adapters inherit the stage environment")
	for _, name := range []string{"collector", "scorer", "gatekeeper", "executor"} {
		require.NotEmpty(t, doc.Services[name].Environment["INDEXPILOT_ADAPTERS_LISTEN"], "service %s has no health listener", name)
	}
	for _, name := range []string{"prometheus", "grafana"} {
		require.NotEmpty(t, doc.Services[name].Image, "service %s", name)
		require.NotEmpty(t, doc.Services[name].Volumes, "service %s", name)
		for _, v := range doc.Services[name].Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			_, err := os.Stat(filepath.Join(root, src))
			require.NoError(t, err, "service %s mounts a missing %s", name, src)
		}
	}

	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	pb, err := os.ReadFile(filepath.Join(root, "infra", "prometheus", "prometheus.yml"))
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(pb, &prom))
	require.NotEmpty(t, prom.ScrapeConfigs)
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host := strings.SplitN(target, ":", 2)[0]
				require.Contains(t, doc.Services, host, "job %s scrapes a service compose does not define", sc.JobName)
			}
		}
	}

	for _, f := range []string{"datasources/prometheus.yml", "dashboards/indexpilot.yml"} {
		fb, err := os.ReadFile(filepath.Join(root, "infra", "grafana", "provisioning", f))
		require.NoError(t, err)
		var v map[string]any
		require.NoError(t, yaml.Unmarshal(fb, &v), f)
		require.Equal(t, 1, v["apiVersion"], f)
	}
	db, err := os.ReadFile(filepath.Join(root, "infra", "grafana", "dashboards", "indexpilot.json"))
	require.NoError(t, err)
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(db, &dash))
	require.NotEmpty(t, dash.UID)
	require.NotEmpty(t, dash.Panels)
	series := regexp.MustCompile(`indexpilot_[a-z_]+`)
	exported := map[string]bool{}
	for _, m := range []string{"events_produced_total", "events_consumed_total", "candidates_total", "decisions_total",
		"gate_holds_total", "builds_total", "build_duration_seconds_bucket", "recommendations", "reverts_total",
		"validations_total", "event_age_seconds", "consumer_lag_messages", "bus_consumed_total", "bus_published_total"} {
		exported["indexpilot_"+m] = true
	}
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, "panel %q", p.Title)
		for _, q := range p.Targets {
			for _, s := range series.FindAllString(q.Expr, -1) {
				require.True(t, exported[s], "panel %q queries %s, which no adapter exports", p.Title, s)
			}
		}
	}
}

// TestKubernetesManifestsAreConsistent checks infra/k8s without a cluster:
// every document parses and names a kind; there is a Deployment per stage
// and for the adapters, each with an image of an existing command, non-root,
// with /healthz and /readyz probes and the ConfigMap mounted; the scorer has
// a HorizontalPodAutoscaler; the ConfigMap's configuration is valid; the
// kustomization lists every file.
func TestKubernetesManifestsAreConsistent(t *testing.T) {
	dir := filepath.Join("..", "infra", "k8s")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)

	type container struct {
		Name  string `yaml:"name"`
		Image string `yaml:"image"`
		Env   []struct {
			Name  string `yaml:"name"`
			Value string `yaml:"value"`
		} `yaml:"env"`
		LivenessProbe *struct {
			HTTPGet struct {
				Path string `yaml:"path"`
			} `yaml:"httpGet"`
		} `yaml:"livenessProbe"`
		ReadinessProbe *struct {
			HTTPGet struct {
				Path string `yaml:"path"`
			} `yaml:"httpGet"`
		} `yaml:"readinessProbe"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	}
	type manifest struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Data      map[string]string `yaml:"data"`
		Resources []string          `yaml:"resources"`
		Spec      struct {
			ScaleTargetRef struct {
				Kind string `yaml:"kind"`
				Name string `yaml:"name"`
			} `yaml:"scaleTargetRef"`
			MaxReplicas int `yaml:"maxReplicas"`
			Template    struct {
				Spec struct {
					SecurityContext struct {
						RunAsNonRoot bool `yaml:"runAsNonRoot"`
						RunAsUser    int  `yaml:"runAsUser"`
					} `yaml:"securityContext"`
					Containers []container `yaml:"containers"`
					Volumes    []struct {
						Name      string `yaml:"name"`
						ConfigMap *struct {
							Name string `yaml:"name"`
						} `yaml:"configMap"`
					} `yaml:"volumes"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	byKind := map[string]map[string]manifest{}
	for _, f := range files {
		fh, err := os.Open(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(fh)
		for {
			var m manifest
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			require.NotEmpty(t, m.Kind, "%s: a document without kind", f)
			require.NotEmpty(t, m.APIVersion, "%s: a document without apiVersion", f)
			if m.Kind != "Kustomization" {
				require.NotEmpty(t, m.Metadata.Name, "%s: a %s without a name", f, m.Kind)
			}
			if byKind[m.Kind] == nil {
				byKind[m.Kind] = map[string]manifest{}
			}
			byKind[m.Kind][m.Metadata.Name] = m
		}
		_ = fh.Close()
	}

	configMaps := byKind["ConfigMap"]
	require.Contains(t, configMaps, "indexpilot-config")
	cfgFile := filepath.Join(t.TempDir(), "indexpilot_config.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(configMaps["indexpilot-config"].Data["indexpilot_config.yaml"]), 0o600))
	cfg, err := config.Load(cfgFile, []string{"INDEXPILOT_DATABASE_URL=postgres://u@db/app"})
	require.NoError(t, err, "the ConfigMap's configuration")
	require.Equal(t, config.TransportKafka, cfg.Bus.Transport)
	require.NotEmpty(t, cfg.Adapters.Listen, "the probes need adapters.listen")

	deployments := byKind["Deployment"]
	for _, st := range []string{"collector", "scorer", "gatekeeper", "executor", "adapters"} {
		d, ok := deployments["indexpilot-"+st]
		require.True(t, ok, "no Deployment for %s", st)
		ps := d.Spec.Template.Spec
		require.True(t, ps.SecurityContext.RunAsNonRoot, "%s runs as root", st)
		require.NotZero(t, ps.SecurityContext.RunAsUser, "%s runs as root", st)
		require.Len(t, ps.Containers, 1, st)
		c := ps.Containers[0]
		image := strings.SplitN(strings.TrimPrefix(c.Image, "indexpilot/"), ":", 2)[0]
		require.DirExists(t, filepath.Join("..", "services", image, "cmd", image), "%s runs image %s of no command", st, c.Image)
		require.NotNil(t, c.LivenessProbe, st)
		require.Equal(t, "/healthz", c.LivenessProbe.HTTPGet.Path, st)
		require.NotNil(t, c.ReadinessProbe, st)
		require.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path, st)
		env := map[string]string{}
		for _, e := range c.Env {
			env[e.Name] = e.Value
		}
		require.Contains(t, env, "INDEXPILOT_DATABASE_URL", st)
		mounted := false
		for _, v := range ps.Volumes {
			if v.ConfigMap != nil {
				require.Contains(t, configMaps, v.ConfigMap.Name, "%s mounts a missing ConfigMap", st)
				for _, vm := range c.VolumeMounts {
					if vm.Name == v.Name && filepath.Join(vm.MountPath, "indexpilot_config.yaml") == env["INDEXPILOT_CONFIG"] {
						mounted = true
					}
				}
			}
		}
		require.True(t, mounted, "%s: INDEXPILOT_CONFIG is not the mounted ConfigMap", st)
	}

	hpa, ok := byKind["HorizontalPodAutoscaler"]["indexpilot-scorer"]
	require.True(t, ok, "no HorizontalPodAutoscaler for the scorer")
	require.Equal(t, "Deployment", hpa.Spec.ScaleTargetRef.Kind)
	require.Contains(t, deployments, hpa.Spec.ScaleTargetRef.Name)
	require.Greater(t, hpa.Spec.MaxReplicas, 1)

	kust, ok := byKind["Kustomization"][""]
	require.True(t, ok, "no kustomization.yaml")
	listed := map[string]bool{}
	for _, r := range kust.Resources {
		listed[r] = true
	}
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" {
			require.True(t, listed[base], "kustomization.yaml does not list %s", base)
		}
	}
}
