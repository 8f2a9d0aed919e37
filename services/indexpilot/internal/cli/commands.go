package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/indexpilot/indexpilot/pkg/bypass"
	"github.com/indexpilot/indexpilot/pkg/config"
)

// newRoot declares the command tree. Every command has a one-line purpose
// (Short), its flags with their defaults and one example: that is what
// `indexpilot COMMAND --help` prints (golden files in testdata/help).
func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "indexpilot",
		Short: "IndexPilot finds, builds and validates the indexes a PostgreSQL workload needs",
		Long: `IndexPilot finds, builds and validates the indexes a PostgreSQL workload needs.

The configuration is indexpilot_config.yaml (or --config / INDEXPILOT_CONFIG),
then INDEXPILOT_* environment variables; INDEXPILOT_DATABASE_URL is the control
database.`,
		Example: `  indexpilot init && indexpilot run       # advisory: watch, score, record recommendations
  indexpilot recommendations --evidence`,
		Args:          subcommandArgs,
		RunE:          func(*cobra.Command, []string) error { return nil }, // Args always fails
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRun: func(*cobra.Command, []string) {
			a.prepare()
		},
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.PersistentFlags().StringVar(&a.cfgPath, "config", "", "configuration file (default $INDEXPILOT_CONFIG, else ./indexpilot_config.yaml)")
	root.SetFlagErrorFunc(flagError)
	root.CompletionOptions.DisableDefaultCmd = true

	root.AddCommand(
		adviseCommand(a), runCommand(a), initCommand(a), reloadCommand(a), uninstallCommand(a), demoCommand(a),
		recommendationsCommand(a), explainCommand(a), statusCommand(a), reportCommand(a), restoreCommand(a), archiveCommand(a),
		bypassCommand(a), approveCommand(a, "approve"), approveCommand(a, "reject"), checkConfigCommand(a),
		replayCommand(a), dashboardCommand(a), setupRoleCommand(a),
	)
	for _, s := range []struct{ name, short string }{
		{"collector", "Run only the collector stage, which polls each target's statistics (bus.transport: kafka)"},
		{"scorer", "Run only the scorer stage, which prices index candidates with the planner (bus.transport: kafka)"},
		{"gatekeeper", "Run only the gatekeeper stage, which applies the safety rules (bus.transport: kafka)"},
		{"executor", "Run only the executor stage, which builds, validates and removes indexes (bus.transport: kafka)"},
		{"adapters", "Run only the monitoring adapters: Prometheus /metrics, DogStatsD, OTLP"},
	} {
		root.AddCommand(stageCommand(a, s.name, s.short))
	}
	root.AddCommand(completionCommand(a, root))
	root.SetHelpCommand(helpCommand(root))
	return root
}

// name is a command's path without the program name ("bypass set").
func name(c *cobra.Command) string {
	p := c.CommandPath()
	if i := strings.IndexByte(p, ' '); i >= 0 {
		return p[i+1:]
	}
	return p
}

// noArgs accepts no positional argument.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", name(c), args[0])}
	}
	return nil
}

// oneArg accepts exactly one positional argument, described by what.
func oneArg(what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return usageError{fmt.Sprintf("%s: missing %s", name(c), what)}
		case len(args) > 1:
			return usageError{fmt.Sprintf("%s: unexpected argument %q (want one %s)", name(c), args[1], what)}
		}
		return nil
	}
}

// subcommandArgs is the Args of a command that only groups subcommands:
// any argument left is an unknown subcommand.
func subcommandArgs(c *cobra.Command, args []string) error {
	var valid []string
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			valid = append(valid, s.Name())
		}
	}
	list := strings.Join(valid, ", ")
	prefix := name(c) + ": "
	if !c.HasParent() {
		prefix = ""
	}
	if len(args) == 0 {
		if !c.HasParent() {
			return usageError{fmt.Sprintf("no command given (commands: %s; indexpilot help COMMAND explains one)", list)}
		}
		return usageError{fmt.Sprintf("%smissing subcommand (valid: %s)", prefix, list)}
	}
	what := "subcommand"
	if !c.HasParent() {
		what = "command"
	}
	if c.SuggestionsMinimumDistance <= 0 {
		c.SuggestionsMinimumDistance = 2
	}
	hint := ""
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		hint = fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return usageError{fmt.Sprintf("%sunknown %s %q%s; valid: %s", prefix, what, args[0], hint, list)}
}

// flagError turns a flag parsing error into a one-line usage error; an
// unknown flag lists the valid ones.
func flagError(c *cobra.Command, err error) error {
	msg := name(c) + ": " + err.Error()
	if !c.HasParent() {
		msg = err.Error()
	}
	if strings.Contains(err.Error(), "unknown flag") || strings.Contains(err.Error(), "unknown shorthand flag") {
		msg += "; valid flags: " + strings.Join(flagNames(c), ", ")
	}
	return usageError{msg}
}

// flagNames lists the flags c accepts, its own and inherited ones.
func flagNames(c *cobra.Command) []string {
	var out []string
	add := func(f *pflag.Flag) {
		n := "--" + f.Name
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	c.LocalFlags().VisitAll(add)
	c.InheritedFlags().VisitAll(add)
	if !slices.Contains(out, "--help") {
		out = append(out, "--help")
	}
	slices.Sort(out)
	return out
}

// longFlags rewrites the single-dash long flags the standard flag package
// accepted (-json, -since=72h) to their double-dash form, so that commands
// typed for earlier versions keep working. Only names some command declares
// are rewritten; everything after "--" is left alone.
func longFlags(root *cobra.Command, args []string) []string {
	known := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.PersistentFlags(), c.Flags()} {
			fs.VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	out := make([]string, len(args))
	copy(out, args)
	for i, arg := range out {
		if arg == "--" {
			break
		}
		if len(arg) < 3 || arg[0] != '-' || arg[1] == '-' {
			continue
		}
		n, _, _ := strings.Cut(arg[1:], "=")
		if len(n) > 1 && known[n] {
			out[i] = "-" + arg
		}
	}
	return out
}

// helpCommand is `indexpilot help [COMMAND...]`: the command's usage, as
// COMMAND --help prints it.
func helpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:     "help [COMMAND...]",
		Short:   "Print the usage of a command (its purpose, flags and an example)",
		Example: "  indexpilot help bypass set",
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil {
				return usageError{"help: " + err.Error()}
			}
			if len(rest) > 0 {
				if err := subcommandArgs(target, rest); err != nil {
					return usageError{"help: " + err.Error()}
				}
			}
			// The same text as `COMMAND --help`, its help flag included.
			target.InitDefaultHelpFlag()
			return target.Help()
		},
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			target, _, err := root.Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, s := range target.Commands() {
				if s.IsAvailableCommand() && strings.HasPrefix(s.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(s.Name(), s.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
	}
}

// completionCommand prints the shell completion scripts cobra generates
// from the command tree.
func completionCommand(a *app, root *cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:     "completion",
		Short:   "Print a shell completion script for bash or zsh",
		Example: "  source <(indexpilot completion bash)",
		Args:    subcommandArgs,
		RunE:    func(*cobra.Command, []string) error { return nil },
	}
	c.AddCommand(&cobra.Command{
		Use:   "bash",
		Short: "Print the bash completion script (needs the bash-completion package)",
		Example: `  source <(indexpilot completion bash)                                  # this shell
  indexpilot completion bash > /etc/bash_completion.d/indexpilot        # every new shell`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return root.GenBashCompletionV2(a.stdout, true) },
	}, &cobra.Command{
		Use:   "zsh",
		Short: "Print the zsh completion script",
		Example: `  indexpilot completion zsh > "${fpath[1]}/_indexpilot"   # then start a new shell
  source <(indexpilot completion zsh)                       # this shell (after compinit)`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return root.GenZshCompletion(a.stdout) },
	})
	return c
}

func adviseCommand(a *app) *cobra.Command {
	var o adviseOptions
	c := &cobra.Command{
		Use:   "advise [DATABASE-URL]",
		Short: "Recommend indexes from the history a database's pg_stat_statements already holds, and exit",
		Long: `Recommend indexes from the history a database's pg_stat_statements already holds, and exit.

It prices the candidates with the pipeline's scorer (the planner with HypoPG's
hypothetical indexes, or the pg_stats model without HypoPG) and prints them with
their evidence. It needs no control database and creates nothing in the
database. The URL is the argument, else INDEXPILOT_DATABASE_URL.`,
		Example: "  indexpilot advise postgres://app@db.example:5432/app",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError{fmt.Sprintf("advise: unexpected argument %q (want one database URL)", args[1])}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.url = args[0]
			}
			return adviseCmd(a.ctx, a.configPath(), o, a.stdout, a.stderr)
		},
	}
	c.Flags().BoolVar(&o.json, "json", false, "print JSON (the same data)")
	c.Flags().StringVar(&o.formula, "formula", "", "formula version ("+strings.Join(config.ScorerFormulas, ", ")+"); default scorer.formula_version")
	c.Flags().BoolVar(&o.verbose, "verbose", false, "show the scorer's log, with why each candidate was left out")
	completeValues(c, "formula", config.ScorerFormulas...)
	return c
}

// completeValues makes the shell complete flag of c with values.
func completeValues(c *cobra.Command, flag string, values ...string) {
	_ = c.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
}

// completeBypassSet completes `bypass set LEVEL [NAME] disable|enable`.
func completeBypassSet(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	verbs := []string{"disable", "enable"}
	var out []string
	switch {
	case len(args) == 0:
		for _, l := range bypass.Levels {
			out = append(out, string(l))
		}
	case len(args) == 1 && args[0] == string(bypass.LevelStage):
		out = config.BypassStages
	case len(args) == 1 && args[0] == string(bypass.LevelFeature):
		out = config.BypassFeatures
	case len(args) == 1 || (len(args) == 2 && (args[0] == string(bypass.LevelStage) || args[0] == string(bypass.LevelFeature))):
		out = verbs
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func runCommand(a *app) *cobra.Command {
	var mode string
	c := &cobra.Command{
		Use:     "run",
		Short:   "Run all four stages in one process (the embedded default)",
		Example: "  indexpilot run --mode apply",
		Args:    noArgs,
		RunE:    func(*cobra.Command, []string) error { return runAll(a.ctx, a.load, mode, a.stderr) },
	}
	c.Flags().StringVar(&mode, "mode", "", "override features.auto_indexer.mode (advisory or apply)")
	completeValues(c, "mode", config.ModeAdvisory, config.ModeApply)
	return c
}

func initCommand(a *app) *cobra.Command {
	var target string
	c := &cobra.Command{
		Use:   "init",
		Short: "Create or upgrade the indexpilot schema in the control database",
		Example: `  indexpilot init                  # the control database's indexpilot schema
  indexpilot init --target main    # indexpilot.query_stats and its publication in target main`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return initCmd(a.ctx, a.load, target, a.stdout) },
	}
	c.Flags().StringVar(&target, "target", "", "instead, create indexpilot.query_stats and its publication in this target")
	return c
}

func reloadCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "reload",
		Short:   "Make running collectors re-read their configuration (targets)",
		Example: "  indexpilot reload",
		Args:    noArgs,
		RunE:    func(*cobra.Command, []string) error { return reloadCmd(a.ctx, a.load, a.stdout) },
	}
}

func uninstallCommand(a *app) *cobra.Command {
	var target string
	c := &cobra.Command{
		Use:     "uninstall --target NAME",
		Short:   "Drop a target's replication slot and publication (keeps indexpilot.query_stats)",
		Example: "  indexpilot uninstall --target main",
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			if target == "" {
				return usageError{"uninstall: --target NAME is required"}
			}
			return uninstallCmd(a.ctx, a.load, target, a.stdout)
		},
	}
	c.Flags().StringVar(&target, "target", "", "target whose replication slot and publication to drop (required)")
	return c
}

func demoCommand(a *app) *cobra.Command {
	var o demoOptions
	c := &cobra.Command{
		Use:   "demo",
		Short: "Build a demo database, show advisory recommendations, then apply them and measure",
		Long: `Build a demo database, show advisory recommendations, then apply them and measure.

It uses the server INDEXPILOT_DATABASE_URL names, or else starts a throwaway
PostgreSQL cluster of its own.`,
		Example: "  indexpilot demo --rows small",
		Args:    noArgs,
		RunE:    func(*cobra.Command, []string) error { return demoCmd(a.ctx, a.configPath(), o, a.stdout, a.stderr) },
	}
	c.Flags().BoolVar(&o.keep, "keep", false, "keep the throwaway cluster running and its directory after the demo (also INDEXPILOT_DEMO_KEEP)")
	c.Flags().StringVar(&o.rows, "rows", "default", "data size: small or default")
	c.Flags().IntVar(&o.per, "per-statement", 200, "times each workload statement runs per phase (at least 10)")
	c.Flags().BoolVar(&o.verbose, "verbose", false, "show the pipeline's logs")
	completeValues(c, "rows", "small", "default")
	return c
}

func recommendationsCommand(a *app) *cobra.Command {
	var o recOptions
	c := &cobra.Command{
		Use:     "recommendations",
		Aliases: []string{"recs"},
		Short:   "List the recommendations, best first",
		Example: "  indexpilot recommendations --state proposed --evidence",
		Args:    noArgs,
		RunE:    func(*cobra.Command, []string) error { return recommendations(a.ctx, a.load, o, a.stdout) },
	}
	c.Flags().BoolVar(&o.json, "json", false, "print JSON")
	c.Flags().StringVar(&o.state, "state", "", "only this state ("+strings.Join(stateNames(), ", ")+")")
	c.Flags().StringVar(&o.target, "target", "", "only this target")
	c.Flags().BoolVar(&o.evidence, "evidence", false, "print each recommendation's per-statement evidence")
	completeValues(c, "state", stateNames()...)
	return c
}

func statusCommand(a *app) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "status",
		Short:   "Summary of recommendations, builds, workload and collector health per target",
		Example: "  indexpilot status\n  indexpilot status --json | jq '.[].stages'",
		Args:    noArgs,
		RunE:    func(*cobra.Command, []string) error { return status(a.ctx, a.load, asJSON, a.stdout) },
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON (each target's status with its stages' health and running builds, as GET /api/v1/targets)")
	return c
}

func reportCommand(a *app) *cobra.Command {
	var o reportOptions
	c := &cobra.Command{
		Use:     "report",
		Short:   "What was recommended, built, validated (before/after), reverted and removed, as Markdown",
		Example: "  indexpilot report --since 168h > report.md",
		Args:    noArgs,
		RunE:    func(*cobra.Command, []string) error { return reportCmd(a.ctx, a.load, o, a.stdout) },
	}
	c.Flags().BoolVar(&o.json, "json", false, "print JSON instead of Markdown")
	c.Flags().StringVar(&o.target, "target", "", "only this target")
	c.Flags().DurationVar(&o.since, "since", 0, "only what happened in this last duration (e.g. 168h); 0 means everything")
	return c
}

func explainCommand(a *app) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "explain RECOMMENDATION-ID",
		Short:   "Why an index exists: its statements, candidate and pricing, decisions, build and validation",
		Example: "  indexpilot explain 9f36b406",
		Args:    oneArg("recommendation id (or a unique prefix of it)"),
		RunE: func(_ *cobra.Command, args []string) error {
			return explainCmd(a.ctx, a.load, args[0], asJSON, a.stdout)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func restoreCommand(a *app) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "restore REMOVAL-ID",
		Short:   "Recreate an index the executor removed, from its recorded definition",
		Example: "  indexpilot restore 3f2a9c1e",
		Args:    oneArg("removal id (or a unique prefix of it)"),
		RunE: func(_ *cobra.Command, args []string) error {
			return restoreCmd(a.ctx, a.load, args[0], asJSON, a.stdout)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func archiveCommand(a *app) *cobra.Command {
	var olderThan string
	var dryRun bool
	c := &cobra.Command{
		Use:     "archive --older-than AGE",
		Short:   "Move mutation_log rows older than --older-than to mutation_log_archive",
		Example: "  indexpilot archive --older-than 90d --dry-run",
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			return archiveCmd(a.ctx, a.load, olderThan, dryRun, a.stdout)
		},
	}
	c.Flags().StringVar(&olderThan, "older-than", "", "archive the mutation_log rows older than this (e.g. 720h or 90d; required)")
	c.Flags().BoolVar(&dryRun, "dry-run", false, "only count the rows that would move")
	return c
}

func bypassCommand(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "bypass",
		Short: "Show or set the 4-level bypass and the emergency stop",
		Example: `  indexpilot bypass show
  indexpilot bypass stop --reason "incident 4711" --for 15m`,
		Args: subcommandArgs,
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	var asJSON bool
	show := &cobra.Command{
		Use:     "show",
		Short:   "Show the effective status of every switch: which level disabled what, by whom, when, why",
		Example: "  indexpilot bypass show --json",
		Args:    noArgs,
		RunE:    func(*cobra.Command, []string) error { return bypassShow(a.ctx, a.load, asJSON, a.stdout) },
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.AddCommand(show)
	for _, s := range []struct{ use, short, long, example string }{
		{"set LEVEL [NAME] disable|enable", "Disable or enable one switch of the bypass",
			"Disable or enable one switch of the bypass.\n\nLEVEL is feature or stage (with a NAME), or system, startup or emergency.",
			`  indexpilot bypass set feature auto_indexing disable --reason "quarter close"
  indexpilot bypass set stage executor disable --reason "replica lag" --for 30m`},
		{"stop", "Emergency stop: halt all DDL now (--for recovers by itself)", "",
			`  indexpilot bypass stop --reason "incident 4711" --for 15m`},
		{"resume", "End the emergency stop", "", `  indexpilot bypass resume --reason "resolved"`},
	} {
		var reason string
		sub := strings.Fields(s.use)[0]
		cmd := &cobra.Command{Use: s.use, Short: s.short, Long: s.long, Example: s.example}
		if sub == "set" {
			cmd.ValidArgsFunction = completeBypassSet
		}
		forDur := cmd.Flags().Duration("for", 0, "recover automatically after this long (disabling changes only)")
		cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in mutation_log)")
		cmd.RunE = func(_ *cobra.Command, args []string) error {
			return bypassSet(a.ctx, a.load, sub, args, reason, *forDur, a.stdout)
		}
		c.AddCommand(cmd)
	}
	return c
}

func approveCommand(a *app, verb string) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:     verb + " RECOMMENDATION-ID",
		Short:   "Approve a recommendation by id: the gatekeeper builds it once its remaining rules pass",
		Example: `  indexpilot approve 9f36b406 --reason "reviewed"`,
		Args:    oneArg("recommendation id"),
		RunE: func(_ *cobra.Command, args []string) error {
			return approveCmd(a.ctx, a.load, verb, args[0], reason, a.stdout)
		},
	}
	usage := "why (recorded in mutation_log)"
	if verb == "reject" {
		c.Short = "Reject a recommendation by id: it is closed for good"
		c.Example = `  indexpilot reject 9f36b406 --reason "not on this table"`
		usage = "why (required; recorded in mutation_log)"
	}
	c.Flags().StringVar(&reason, "reason", "", usage)
	return c
}

func checkConfigCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "check-config",
		Short:   "Validate the configuration and print it with secrets redacted",
		Example: "  indexpilot --config /etc/indexpilot.yaml check-config",
		Args:    noArgs,
		RunE:    func(*cobra.Command, []string) error { return checkConfig(a.load, a.stdout) },
	}
}

func replayCommand(a *app) *cobra.Command {
	var o replayOptions
	c := &cobra.Command{
		Use:   "replay",
		Short: "Re-score the retained workload with a chosen formula and window, and report",
		Example: `  indexpilot replay --formula v1 --since 72h
  indexpilot replay --since 2:1200 --json      # from offset 1200 of partition 2 (kafka)`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error { return replay(a.ctx, a.load, o, a.stdout, a.stderr) },
	}
	c.Flags().StringVar(&o.since, "since", "", "start of the window: an RFC 3339 time or a duration back from now (72h); default the configured window. "+
		"On the kafka transport also an offset: N (every partition) or P:N (partition P), to re-read the retained statistics events from there")
	c.Flags().StringVar(&o.until, "until", "", "end of the window: an RFC 3339 time; default the latest observation")
	c.Flags().StringVar(&o.formula, "formula", "", "formula version ("+strings.Join(config.ScorerFormulas, ", ")+"); default scorer.formula_version")
	c.Flags().StringVar(&o.target, "target", "", "only this target")
	c.Flags().BoolVar(&o.json, "json", false, "print the report as JSON")
	c.Flags().BoolVar(&o.emit, "emit", false, "also publish the candidates and removals (needs bus.transport kafka)")
	completeValues(c, "formula", config.ScorerFormulas...)
	return c
}

func stageCommand(a *app, stageName, short string) *cobra.Command {
	return &cobra.Command{
		Use:     stageName,
		Short:   short,
		Example: "  INDEXPILOT_BUS_TRANSPORT=kafka indexpilot " + stageName,
		Args:    noArgs,
		RunE: func(*cobra.Command, []string) error {
			cfg, err := a.load()
			if err != nil {
				return err
			}
			return runStage(a.ctx, cfg, stageName)
		},
	}
}

func dashboardCommand(a *app) *cobra.Command {
	var listen string
	c := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the web dashboard and its JSON API on their own, reading the control database",
		Long: `Serve the web dashboard and its JSON API on their own, reading the control database.

It listens on --listen, else dashboard.listen, else 127.0.0.1:8089; a port
without a host binds the loopback interface. Changes (approve, reject,
bypass) need the token of dashboard.token or INDEXPILOT_DASHBOARD_TOKEN;
without one the dashboard is read-only. indexpilot run serves the same
dashboard when dashboard.listen is set.`,
		Example: `  INDEXPILOT_DASHBOARD_TOKEN=$(cat /run/secrets/ip-token) indexpilot dashboard --listen 127.0.0.1:8089`,
		Args:    noArgs,
		RunE:    func(*cobra.Command, []string) error { return dashboardCmd(a.ctx, a.load, listen, a.stderr) },
	}
	c.Flags().StringVar(&listen, "listen", "", "address to serve on (default dashboard.listen, else "+config.DefaultDashboardListen+")")
	return c
}

func setupRoleCommand(a *app) *cobra.Command {
	var o setupRoleOptions
	c := &cobra.Command{
		Use:   "setup-role",
		Short: "Create or update IndexPilot's least-privilege role on a target server, in one transaction",
		Long: `Create or update IndexPilot's least-privilege role on a target server, in one transaction.

The role logs in, is not a superuser, is a member of pg_monitor (the
collector reads every role's statistics), has a CONNECTION LIMIT matching the
connection budget, SELECT on the tables of the --grant-select-schema schemas
(EXPLAIN prices the what-if indexes), and, with --owner, membership in the
roles owning the tables it may index (CREATE INDEX needs ownership).

Roles are cluster-wide: the role, its limit and memberships apply to the whole
server; the SELECT grants apply to the database of the URL only, so run it
again on each database it scores. With --control-schema the database of the
URL is also the control database (database_url): the role gets the indexpilot
schema there (indexpilot init then needs no CREATE on the database), and its
connection limit counts the control pool. Running it twice leaves the same state. It
never sets a password. Connect (--url, else INDEXPILOT_DATABASE_URL) as a
superuser or a role with CREATEROLE. See docs/connections.md.`,
		Example: `  INDEXPILOT_DATABASE_URL=postgres://postgres@db.example/app indexpilot setup-role --owner app_owner`,
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return setupRoleCmd(a.ctx, a.configPath(), o, c.Flags().Changed("connection-limit"), a.stdout)
		},
	}
	c.Flags().StringVar(&o.url, "url", "", "database URL to connect to as a superuser or a role with CREATEROLE (default $INDEXPILOT_DATABASE_URL)")
	c.Flags().StringVar(&o.role, "role", "indexpilot", "the role to create or update")
	c.Flags().StringArrayVar(&o.owners, "owner", nil, "a role owning tables IndexPilot may build indexes on (repeatable; apply mode needs it)")
	c.Flags().IntVar(&o.connLimit, "connection-limit", 0, fmt.Sprintf("the role's CONNECTION LIMIT (default connections.per_server + %d for builds + %d for the CLI)", roleBuildRoom, roleCLIRoom))
	c.Flags().StringArrayVar(&o.schemas, "grant-select-schema", []string{"public"}, "a schema whose tables it may read, now and later (repeatable)")
	c.Flags().BoolVar(&o.control, "control-schema", false, fmt.Sprintf("this database is also the control database: create schema indexpilot owned by the role, and add connections.control_pool + %d to the default connection limit", roleListenRoom))
	c.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the SQL and change nothing")
	return c
}
