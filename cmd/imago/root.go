package main

import (
	"io"

	"github.com/spf13/cobra"
)

// cli carries the streams every subcommand writes to, so that commands can
// be run and tested in-process.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

func newRootCommand(c *cli) *cobra.Command {
	root := &cobra.Command{
		Use:   "imago",
		Short: "Linux IMA measurement lists, TCG event logs, and a userspace IMA agent",
		Long: `imago reads, writes, replays and checks Linux IMA measurement lists and TCG
firmware event logs byte for byte as the kernel writes them, and runs a
userspace IMA measurement agent with a TPM.

Exit status: 0 holds, 1 verification failed, 2 bad usage or unreadable input,
3 not supported here, 130 canceled.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(
		newLogCommand(c),
		newEventlogCommand(c),
		newBootaggCommand(c),
		// agent side (issue 3): add newAgentCommand(c), newTPMCommand(c), ... here
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
	)
	return root
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s: want %d argument(s), got %d", cmd.CommandPath(), n, len(args))
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usagef("%s: want at least %d argument(s), got %d", cmd.CommandPath(), n, len(args))
		}
		return nil
	}
}
