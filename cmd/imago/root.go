package main

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/spf13/cobra"
)

// cli carries the streams every subcommand writes to, so that commands can
// be run and tested in-process.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// runState is what main needs to know about the command that runs.
type runState struct {
	mu  sync.Mutex
	cmd *cobra.Command
}

func (s *runState) set(cmd *cobra.Command) {
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
}

// selfStopping reports whether the running command shuts itself down on a
// signal (the agent, the demo), so that main waits for it.
func (s *runState) selfStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil && s.cmd.Annotations[annotLifecycle] == "self"
}

// prefix is "log show: " for the running command, for messages printed
// on its behalf.
func (s *runState) prefix() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || !s.cmd.HasParent() {
		return ""
	}
	return commandName(s.cmd) + ": "
}

// Annotations on commands.
const (
	annotExit      = "imago.exit"      // the EXIT STATUS section
	annotLifecycle = "imago.lifecycle" // "self": shuts down on a signal itself
	annotGroup     = "imago.group"     // "yes": only a parent of commands
)

func newRootCommand(c *cli) *cobra.Command { return newRootCommandState(c, &runState{}) }

// newRootCommandState builds the command tree; st learns which command
// runs.
func newRootCommandState(c *cli, st *runState) *cobra.Command {
	root := &cobra.Command{
		Use:   "imago",
		Short: "Linux IMA measurement lists, TCG event logs, and a userspace IMA agent",
		Long: `imago reads, writes, replays and checks Linux IMA measurement lists and TCG
firmware event logs byte for byte as the kernel writes them, and runs a
userspace IMA measurement agent with a TPM.`,
		Version:       versionLine(readBuildInfo()),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			st.set(cmd)
		},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(
		newLogCommand(c),
		newEventlogCommand(c),
		newBootaggCommand(c),
		newAgentCommand(c),
		newMeasureCommand(c),
		newStatusCommand(c),
		newLateCommand(c),
		newTPMCommand(c),
		newDemoCommand(c),
		newHashCommand(c),
		newSignCommand(c),
		newAppraiseCommand(c),
		newPolicyCommand(c),
		newVerifyCommand(c),
		newRuntimePolicyCommand(c),
		newVerifierCommand(c),
		newAttestCommand(c),
		newVersionCommand(c),
	)
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	for _, sub := range root.Commands() {
		switch sub.Name() {
		case "agent", "demo":
			annotate(sub, annotLifecycle, "self")
		case "help":
			exitStatus(sub, "0 help shown")
		case "completion":
			exitStatus(sub, "0 help shown (--help)", "2 a missing or unknown shell")
			for _, sh := range sub.Commands() {
				exitStatus(sh, "0 the script was written", "2 bad usage")
			}
		}
	}
	exitStatus(root, exitDefault...)
	finishCommands(root)
	return root
}

// helpTemplate is cobra's, with the EXIT STATUS section last.
const helpTemplate = `{{with (or .Long .Short)}}{{. | trimTrailingWhitespaces}}

{{end}}{{if or .Runnable .HasSubCommands}}{{.UsageString}}{{end}}{{with index .Annotations "` + annotExit + `"}}
EXIT STATUS
{{.}}
{{end}}`

// finishCommands walks every command: a group (a command with
// subcommands and nothing to run itself) answers a missing or unknown
// subcommand with a usage error and its usage; every command gets an EXIT
// STATUS section in its help (an "Exit status:" paragraph written at the
// end of its Long text becomes that section).
func finishCommands(cmd *cobra.Command) {
	cmd.SetHelpTemplate(helpTemplate)
	if !cmd.HasParent() {
		// Inherited by every command: a group's usage does not show it as
		// runnable (it runs only to answer a wrong command).
		cmd.SetUsageTemplate(strings.Replace(cmd.UsageTemplate(), "{{if .Runnable}}\n  {{.UseLine}}{{end}}",
			`{{if and .Runnable (ne (index .Annotations "`+annotGroup+`") "yes")}}`+"\n  {{.UseLine}}{{end}}", 1))
	}
	if cmd.HasSubCommands() {
		cmd.SuggestionsMinimumDistance = 2
	}
	if cmd.HasSubCommands() && cmd.Run == nil && cmd.RunE == nil {
		annotate(cmd, annotGroup, "yes")
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(cmd *cobra.Command, args []string) error { return unknownSubcommand(cmd, args) }
		if cmd.Annotations[annotExit] == "" {
			exitStatus(cmd, "0 help shown (--help)", "2 a missing or unknown command")
		}
	}
	if cmd.Annotations[annotExit] == "" {
		if i := strings.LastIndex(cmd.Long, "Exit status:"); i >= 0 {
			text := strings.Join(strings.Fields(cmd.Long[i+len("Exit status:"):]), " ")
			cmd.Long = strings.TrimRight(cmd.Long[:i], " \n")
			annotate(cmd, annotExit, wrapIndent(text))
		} else {
			exitStatus(cmd, exitDefault...)
		}
	}
	for _, sub := range cmd.Commands() {
		finishCommands(sub)
	}
}

// exitDefault is the EXIT STATUS of a command that says nothing more
// precise.
var exitDefault = []string{
	"0 the command ran and what it checked holds",
	"1 verification failed: a PCR, boot aggregate or template digest does not match",
	"2 bad usage, or input that cannot be read or parsed",
	"3 not supported here (no TPM, no fanotify, simulator not built in)",
	"130 canceled (SIGINT, SIGTERM)",
}

// exitStatus sets a command's EXIT STATUS section: one "N what" line per
// status.
func exitStatus(cmd *cobra.Command, lines ...string) {
	var b strings.Builder
	for i, l := range lines {
		code, what, _ := strings.Cut(l, " ")
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "  %-4s %s", code, what)
	}
	annotate(cmd, annotExit, b.String())
}

// withCanceled adds the status every reading command shares.
func withCanceled(lines ...string) []string {
	return append(lines, "130 canceled (SIGINT, SIGTERM)")
}

func annotate(cmd *cobra.Command, k, v string) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[k] = v
}

// wrapIndent wraps text at 78 columns, indented by two spaces.
func wrapIndent(text string) string {
	var b strings.Builder
	col := 0
	for _, w := range strings.Fields(text) {
		switch {
		case col == 0:
			b.WriteString("  ")
			col = 2
		case col+1+len(w) > 78:
			b.WriteString("\n  ")
			col = 2
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}

// commandName is the command's path without "imago": "log show".
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()), " ")
}

// exactArgs is cobra.ExactArgs with a usage error; for a command that also
// has subcommands, an argument it does not take is an unknown subcommand.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if n == 0 && len(args) > 0 && cmd.HasSubCommands() {
			return unknownSubcommand(cmd, args)
		}
		if len(args) != n {
			return usagef("%s: want %s, got %d", commandName(cmd), plural(n, "argument"), len(args))
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%s: want at least %s, got %d", commandName(cmd), plural(n, "argument"), len(args))
		}
		return nil
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
