package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/indexpilot/indexpilot/events"
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
