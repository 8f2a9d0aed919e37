package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/help")

// commandPaths lists every command of the tree, subcommands included, as
// the words that name it ("bypass set").
func commandPaths(t *testing.T) [][]string {
	t.Helper()
	var out [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		out = append(out, path)
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() || s.Name() == "help" {
				walk(s, append(append([]string(nil), path...), s.Name()))
			}
		}
	}
	var b bytes.Buffer
	root := newRoot(&app{ctx: context.Background(), stdout: &b, stderr: &b})
	root.InitDefaultHelpCmd()
	walk(root, nil)
	return out
}

// TestHelpGolden: `COMMAND --help`, `COMMAND -h` and `help COMMAND` print
// the same usage for every command, with its purpose, its flags and an
// example, and exit 0. go test -run TestHelpGolden -update rewrites the
// golden files.
func TestHelpGolden(t *testing.T) {
	paths := commandPaths(t)
	require.Greater(t, len(paths), 20)
	dir := filepath.Join("testdata", "help")
	if *update {
		require.NoError(t, os.RemoveAll(dir))
		require.NoError(t, os.MkdirAll(dir, 0o755))
	}
	seen := map[string]bool{}
	for _, path := range paths {
		file := "indexpilot"
		if len(path) > 0 {
			file = strings.Join(path, "_")
		}
		file = filepath.Join(dir, file+".txt")
		seen[file] = true
		code, out, stderr := runCLI(t, nil, append(append([]string(nil), path...), "--help")...)
		require.Equal(t, 0, code, "%v --help: %s", path, stderr)
		require.Empty(t, stderr)
		for _, alt := range [][]string{append(append([]string(nil), path...), "-h"), append([]string{"help"}, path...)} {
			c2, o2, e2 := runCLI(t, nil, alt...)
			require.Equal(t, 0, c2, "%v: %s", alt, e2)
			require.Equal(t, out, o2, "%v prints another help than %v --help", alt, path)
		}
		require.Contains(t, out, "Usage:\n  indexpilot", path)
		require.Contains(t, out, "Examples:\n  ", path)
		require.Contains(t, out, "-h, --help", path)
		require.NotEqual(t, "", strings.SplitN(out, "\n", 2)[0], "%v: no one-line purpose", path)
		if *update {
			require.NoError(t, os.WriteFile(file, []byte(out), 0o644))
			continue
		}
		want, err := os.ReadFile(file)
		require.NoError(t, err, "no golden file for %v: run go test -run TestHelpGolden -update", path)
		require.Equal(t, string(want), out, "help of %v changed: run go test -run TestHelpGolden -update and review the diff", path)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	require.NoError(t, err)
	for _, f := range files {
		require.True(t, seen[f], "golden file %s names no command: run go test -run TestHelpGolden -update", f)
	}
}

// TestUnknownNamesTheValidOnes: an unknown command, subcommand or flag is
// one line that lists what is valid, and exits 2.
func TestUnknownNamesTheValidOnes(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"recomendations"}, []string{`unknown command "recomendations"`, "did you mean recommendations?", "valid: ", "status"}},
		{[]string{"bypass", "frob"}, []string{`bypass: unknown subcommand "frob"`, "valid: resume, set, show, stop"}},
		{[]string{"bypass"}, []string{"bypass: missing subcommand (valid: resume, set, show, stop)"}},
		{[]string{"report", "--sinse", "1h"}, []string{"report: unknown flag: --sinse", "valid flags: --config, --help, --json, --since, --target"}},
		{[]string{"bypass", "stop", "-x"}, []string{"bypass stop: unknown shorthand flag: 'x' in -x", "--for", "--reason"}},
		{[]string{"help", "nope"}, []string{`help: unknown command "nope"`}},
		{[]string{"completion", "fish"}, []string{`completion: unknown subcommand "fish"`, "valid: bash, zsh"}},
	} {
		code, out, stderr := runCLI(t, nil, c.args...)
		require.Equal(t, 2, code, "%v", c.args)
		require.Empty(t, out)
		require.Equal(t, 1, strings.Count(stderr, "\n"), "%v: not one line: %q", c.args, stderr)
		require.True(t, strings.HasPrefix(stderr, "indexpilot: "), stderr)
		for _, w := range c.want {
			require.Contains(t, stderr, w, "%v", c.args)
		}
	}
}

// TestSingleDashLongFlags: the forms the standard flag package accepted
// (-state x, -state=x) still reach the command.
func TestSingleDashLongFlags(t *testing.T) {
	for _, args := range [][]string{{"recommendations", "-state", "nonsense"}, {"recommendations", "-state=nonsense"}} {
		code, _, stderr := runCLI(t, nil, args...)
		require.Equal(t, 2, code)
		require.Contains(t, stderr, `unknown state "nonsense"`, "%v", args)
	}
}

// TestCompletion: the CLI prints its own bash and zsh completion scripts,
// and the completion they call answers with the commands and flags.
func TestCompletion(t *testing.T) {
	code, out, stderr := runCLI(t, nil, "completion", "bash")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "complete -o default -F __start_indexpilot indexpilot")
	code, out, stderr = runCLI(t, nil, "completion", "zsh")
	require.Equal(t, 0, code, stderr)
	require.True(t, strings.HasPrefix(out, "#compdef indexpilot"), out[:40])

	code, out, _ = runCLI(t, nil, "__complete", "bypass", "s")
	require.Equal(t, 0, code)
	require.Contains(t, out, "set\t")
	require.Contains(t, out, "show\t")
	require.Contains(t, out, "stop\t")
	code, out, _ = runCLI(t, nil, "__complete", "recommendations", "--st")
	require.Equal(t, 0, code)
	require.Contains(t, out, "--state")
	code, out, _ = runCLI(t, nil, "__complete", "recommendations", "--state", "")
	require.Equal(t, 0, code)
	require.Contains(t, out, "deferred\n")
	code, out, _ = runCLI(t, nil, "__complete", "bypass", "set", "stage", "")
	require.Equal(t, 0, code)
	require.Contains(t, out, "executor\n")
	code, out, _ = runCLI(t, nil, "__complete", "bypass", "set", "stage", "executor", "")
	require.Equal(t, 0, code)
	require.Contains(t, out, "disable\n")
}
