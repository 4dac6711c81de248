package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/policy"
)

func newPolicyCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check IMA policies and print them as the kernel reads them back",
		Long: `Check IMA policies written in the kernel's policy language (the text written to
<securityfs>/ima/policy) and print them as the kernel reads them back.`,
	}
	cmd.AddCommand(newPolicyCheckCommand(c))
	return cmd
}

func newPolicyCheckCommand(c *cli) *cobra.Command {
	var builtins []string
	cmd := &cobra.Command{
		Use:   "check FILE | check --builtin NAME",
		Short: "Validate a policy and print it as the kernel would read it back",
		Long: `Validate a policy as the kernel does when it is written to
<securityfs>/ima/policy, and print it as 'cat <securityfs>/ima/policy' would
on a kernel with CONFIG_IMA_READ_POLICY: canonical names, one token per
condition in the kernel's order, each followed by a space. FILE may be '-' for
stdin. A rule the kernel would reject is reported as FILE:LINE:COL: why, and
the exit status is 2.

--builtin NAME prints a built-in policy instead (the ima_policy= boot
parameter): tcb, appraise_tcb, secure_boot, critical_data, fail_securely, or
the legacy ima_tcb / ima_appraise_tcb; repeat it or separate names with '|'.
They are assembled in the kernel's boot order.

Rules for hooks a fanotify agent cannot see (mmap, modules, firmware, kexec,
keys, critical data, ...) are accepted, as the kernel accepts them, with one
warning each on stderr; the exit status stays 0.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(builtins) > 0 {
				if len(args) != 0 {
					return usagef("%s: give FILE or --builtin, not both", cmd.CommandPath())
				}
				return nil
			}
			return exactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			var (
				p    *policy.Policy
				name string
				err  error
			)
			if len(builtins) > 0 {
				name = "builtin " + strings.Join(builtins, "|")
				p, err = policy.Builtin(builtins...)
				if err != nil {
					return usagef("--builtin: %v", err)
				}
			} else {
				p, name, err = c.readPolicyFile(cmd.Context(), args[0])
				if err != nil {
					return err
				}
			}
			printPolicyWarnings(c, name, p)
			_, err = p.WriteTo(c.stdout)
			return err
		},
	}
	cmd.Flags().StringArrayVar(&builtins, "builtin", nil, "print the built-in policy NAME (tcb, appraise_tcb, secure_boot, critical_data, fail_securely)")
	exitStatus(cmd, withCanceled("0 the policy is valid", "2 bad usage, a rule the kernel would reject (FILE:LINE:COL), or a file that cannot be read")...)
	return cmd
}

// readPolicyFile parses the policy in FILE ('-' for stdin). A rule the kernel
// would reject is printed as FILE:LINE:COL: why and comes back as an input
// error that is already reported.
func (c *cli) readPolicyFile(ctx context.Context, arg string) (*policy.Policy, string, error) {
	in, err := c.open(ctx, arg)
	if err != nil {
		if arg != "-" && errors.Is(err, os.ErrNotExist) && policy.IsBuiltin(arg) {
			return nil, "", inputErr(fmt.Errorf("%v (for the built-in policy, use --builtin %s)", err, arg))
		}
		return nil, "", err
	}
	defer in.Close()
	p, err := policy.Parse(in.r)
	if err != nil {
		var pe *policy.ParseError
		if errors.As(err, &pe) {
			fmt.Fprintf(c.stderr, "%s:%v\n", in.name, pe)
			return nil, "", silent(inputErr(fmt.Errorf("%s:%w", in.name, pe)))
		}
		return nil, "", inputErr(fmt.Errorf("%s: %w", in.name, err))
	}
	return p, in.name, nil
}

// loadPolicy reads --policy FILE|NAME for the agent: an existing file (or
// '-') is parsed; otherwise a built-in policy name is assembled.
func (c *cli) loadPolicy(arg string) (*policy.Policy, error) {
	if _, err := os.Stat(arg); arg == "-" || err == nil || !policy.IsBuiltin(arg) {
		p, name, err := c.readPolicyFile(context.Background(), arg)
		if err != nil {
			return nil, err
		}
		printPolicyWarnings(c, name, p)
		return p, nil
	}
	p, err := policy.Builtin(arg)
	if err != nil {
		return nil, usagef("--policy: %v", err)
	}
	printPolicyWarnings(c, "builtin "+arg, p)
	return p, nil
}

func printPolicyWarnings(c *cli, name string, p *policy.Policy) {
	for _, w := range p.Warnings() {
		if w.Line > 0 {
			fmt.Fprintf(c.stderr, "imago: warning: %s:%d: ", name, w.Line)
		} else {
			fmt.Fprintf(c.stderr, "imago: warning: %s: ", name)
		}
		if w.Func != policy.FuncNone {
			fmt.Fprintf(c.stderr, "func=%s: ", w.Func)
		}
		fmt.Fprintln(c.stderr, w.Why)
	}
}
