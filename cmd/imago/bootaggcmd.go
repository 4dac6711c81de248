package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// bootaggSource is where PCR0-9 come from: a firmware log or PCR values.
type bootaggSource struct {
	eventlog string
	pcrs     []string
}

func (s *bootaggSource) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.eventlog, "eventlog", "", "replay this firmware event log (binary_bios_measurements) for PCR0-9")
	cmd.Flags().StringArrayVar(&s.pcrs, "pcrs", nil, "PCR values (repeatable): ALG,FILE | YAML | JSON | sysfs DIR")
}

func (c *cli) bootaggPCRs(ctx context.Context, s *bootaggSource) (pcr.Set, error) {
	switch {
	case s.eventlog != "" && len(s.pcrs) > 0:
		return nil, usagef("bootagg: give --eventlog or --pcrs, not both")
	case s.eventlog != "":
		l, err := c.readEventlog(ctx, s.eventlog)
		if err != nil {
			return nil, err
		}
		set, _, err := l.Replay()
		if err != nil {
			return nil, inputErr(fmt.Errorf("%s: %w", s.eventlog, err))
		}
		return set, nil
	case len(s.pcrs) > 0:
		return loadPCRs(ctx, s.pcrs, c.stdin)
	}
	return nil, usagef("bootagg: --eventlog FILE or --pcrs SRC is required")
}

func newBootaggCommand(c *cli) *cobra.Command {
	var (
		src    bootaggSource
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "bootagg (--eventlog FILE | --pcrs SRC...)",
		Short: "Compute the IMA boot aggregate from PCRs or a firmware event log",
		Long: `Compute the boot aggregate the kernel records as the first measurement list
entry, for every bank present: SHA-1 over PCR0-7 for the sha1 bank, the bank's
hash over PCR0-9 for the others (kernels since 5.8). PCRs without events in a
firmware log count as zeros.

` + pcrsHelp,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := c.bootaggPCRs(cmd.Context(), &src)
			if err != nil {
				return err
			}
			agg := bootagg.Compute(set)
			if len(agg) == 0 {
				return inputErr(errors.New("bootagg: no bank with PCR values imago can compute"))
			}
			if asJSON {
				out := map[string]string{}
				for b, d := range agg {
					out[b.String()] = fmt.Sprintf("%x", d)
				}
				return writeJSON(c.stdout, out)
			}
			for _, b := range pcr.Banks {
				if d, ok := agg[b]; ok {
					fmt.Fprintf(c.stdout, "%s:%x\n", b.KernelName(), d)
				}
			}
			return nil
		},
	}
	src.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"<bank>": "<hex>"}`)
	cmd.AddCommand(newBootaggCheckCommand(c))
	exitStatus(cmd, withCanceled("0 computed", "2 bad usage, or PCR values or a log that cannot be read")...)
	return cmd
}

func newBootaggCheckCommand(c *cli) *cobra.Command {
	var (
		src   bootaggSource
		noTPM bool
		lf    listFlags
	)
	cmd := &cobra.Command{
		Use:   "check LOG (--eventlog FILE | --pcrs SRC... | --no-tpm)",
		Short: "Check a measurement list's boot aggregate",
		Long: `Check the first entry of a measurement list, named boot_aggregate or
boot_aggregate_late, against the boot aggregate computed from PCR values or a
firmware event log. The rule that matched is printed: sha1 PCR0-7, PCR0-9 for
other banks, or the pre-5.8 PCR0-7 rule for other banks. With --no-tpm the check
holds only for the all-zero TPM-bypass aggregate.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if noTPM && (src.eventlog != "" || len(src.pcrs) > 0) {
				return usagef("bootagg check: --no-tpm takes no --eventlog or --pcrs")
			}
			var set pcr.Set
			if !noTPM {
				var err error
				if set, err = c.bootaggPCRs(cmd.Context(), &src); err != nil {
					return err
				}
			}
			e, err := c.firstEntry(cmd.Context(), args[0], &lf)
			if err != nil {
				return err
			}
			name, _ := e.Name()
			alg, digest, err := aggregateDigest(e)
			if err != nil {
				return inputErr(fmt.Errorf("%s: first entry: %w", args[0], err))
			}
			shown := fmt.Sprintf("%s:%x", alg, digest)
			if alg == "" {
				shown = fmt.Sprintf("d:%x", digest)
			}
			var rule bootagg.Rule
			if noTPM {
				rule, err = bootagg.CheckNoTPM(name, alg, digest)
			} else {
				rule, err = bootagg.Check(name, alg, digest, set)
			}
			var me *bootagg.MismatchError
			switch {
			case err == nil:
				fmt.Fprintf(c.stdout, "%s %s: matches (%s)\n", name, shown, rule)
				return nil
			case errors.As(err, &me):
				fmt.Fprintf(c.stdout, "%s %s: does NOT match\n", name, shown)
				for _, w := range me.Want {
					fmt.Fprintf(c.stdout, "  computed %s\n", w)
				}
				return failed("%s: boot aggregate does not match", args[0])
			case errors.Is(err, bootagg.ErrNotBootAggregate):
				return failed("%s: first entry is %q, not boot_aggregate or boot_aggregate_late", args[0], name)
			case errors.Is(err, bootagg.ErrNoBank):
				return inputErr(err)
			}
			return inputErr(err)
		},
	}
	src.register(cmd)
	lf.register(cmd)
	cmd.Flags().BoolVar(&noTPM, "no-tpm", false, "hold only for the TPM-bypass (all-zero) aggregate")
	exitStatus(cmd, withCanceled("0 the boot aggregate matches", "1 it does not", "2 bad usage, or input that cannot be read or parsed")...)
	return cmd
}

// firstEntry reads the first entry of a list.
func (c *cli) firstEntry(ctx context.Context, name string, lf *listFlags) (*ima.Entry, error) {
	in, lr, err := c.openList(ctx, []string{name}, lf)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	e, err := lr.Next()
	if err == io.EOF {
		return nil, inputErr(fmt.Errorf("%s: the list is empty", in.name))
	}
	if err != nil {
		return nil, inputErr(fmt.Errorf("%s: %w", in.name, err))
	}
	return e, nil
}

// aggregateDigest returns the boot aggregate entry's algorithm (kernel
// name, "" for the legacy d field) and digest.
func aggregateDigest(e *ima.Entry) (string, []byte, error) {
	for _, f := range e.Fields {
		switch f.ID {
		case ima.FieldD:
			return "", f.Data, nil
		case ima.FieldDNG, ima.FieldDNGv2:
			d, err := ima.ParseDigestField(f.ID, f.Data)
			if err != nil {
				return "", nil, err
			}
			return d.Alg.String(), d.Sum, nil
		}
	}
	return "", nil, ima.ErrNoField
}
