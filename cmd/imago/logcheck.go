package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/pcrsrc"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/replay"
)

// templateMismatches reports listed template digests that their data do not
// hash to, one line each (bounded), and returns a failure if there are any.
// In an ascii list (ascii) the entries are named by line, with why a
// kernel's ascii list can do this.
func templateMismatches(c *cli, name string, res *replay.Result, ascii bool) error {
	if res.TemplateMismatchCount == 0 {
		return nil
	}
	for _, m := range res.TemplateMismatches {
		where := fmt.Sprintf("entry %d", m.Entry)
		if ascii {
			where = fmt.Sprintf("line %d", m.Entry+1)
		}
		fmt.Fprintf(c.stderr, "%s: %s (PCR %d): listed %s template digest %x, template data hash to %x\n",
			name, where, m.PCR, m.Bank, m.Listed, m.Computed)
	}
	if more := res.TemplateMismatchCount - len(res.TemplateMismatches); more > 0 {
		fmt.Fprintf(c.stderr, "%s: ... and %d more template digest mismatches\n", name, more)
	}
	if ascii {
		return failed("%s: %d template digest(s) do not match the printed fields; %s", name, res.TemplateMismatchCount, asciiAmbiguity)
	}
	return failed("%s: %d template digest(s) do not match their template data", name, res.TemplateMismatchCount)
}

// loadPCRs reads every --pcrs SRC and merges them; a later source wins.
func loadPCRs(ctx context.Context, srcs []string, stdin io.Reader) (pcr.Set, error) {
	set := make(pcr.Set)
	for _, s := range srcs {
		v, err := pcrsrc.Load(ctx, s, stdin)
		if err != nil {
			return nil, inputErr(fmt.Errorf("--pcrs %w", err)) // err starts with the source
		}
		set.Merge(v)
	}
	return set, nil
}

const pcrsHelp = `PCR values: ALG,FILE with evmctl's "PCR-NN: hex" lines; a tpm2_pcrread YAML
file; imago's JSON {"sha256": {"10": "<hex>"}}; or a sysfs TPM folder with
pcr-<alg>/<n> files (/sys/class/tpm/tpm0). Repeatable.`

func newLogCheckCommand(c *cli) *cobra.Command {
	var (
		lf        listFlags
		srcs      []string
		ignore    bool
		asJSON    bool
		banksFlag []string
		adopter   string // issue 11
	)
	cmd := &cobra.Command{
		Use:   "check FILE --pcrs SRC [--pcrs SRC]...",
		Short: "Check a measurement list against TPM PCR values",
		Long: `Check that a measurement list replays to the PCR values a TPM holds, in every
bank given. Like evmctl ima_measurement, a match reached at an earlier entry
counts (the list may run ahead of a quote) and the entry is reported. Each
bank is replayed with its own template digests and, where that fails, with
the SHA-1 template digest zero-padded to the bank's size: what kernels before
5.1 extended into every bank, and what current kernels still extend into a
bank whose hash they cannot compute (a sha384 bank without sha384 in the
kernel's crypto). The output says which matched. Violations are replayed as
the kernel extends them (0xFF) and counted; whether they are acceptable is a
verifier's policy. --ignore-violations is accepted for evmctl users and
changes nothing.

` + pcrsHelp + `

` + listHelp,
		Args: listArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(srcs) == 0 {
				return usagef("check: at least one --pcrs SRC is required")
			}
			target, err := loadPCRs(cmd.Context(), srcs, c.stdin)
			if err != nil {
				return err
			}
			name, err := lf.pick(cmd.Context(), args)
			if err != nil {
				return err
			}
			in, err := c.open(cmd.Context(), name)
			if err != nil {
				return err
			}
			defer in.Close()
			ascii := in.isASCII()
			lb, err := lf.listBank(name)
			if err != nil {
				return err
			}
			banks := target.Banks()
			if len(banksFlag) > 0 {
				if banks, err = parseBanks(banksFlag); err != nil {
					return err
				}
			}
			var known []pcr.Bank
			for _, b := range banks {
				if b.Known() {
					known = append(known, b)
				}
			}
			opts := replay.Options{Banks: known, ListBank: lb}
			var head bootHead // issue 11: a bypass list, adopted or not
			first := true
			open := func() iter.Seq2[*ima.Entry, error] {
				o, _ := lf.options()
				if lb != 0 {
					o.DigestSize = lb.Size()
				}
				if first {
					first = false
					seq := head.capture(scanned(in.name, ima.ScanList(in.r, o)))
					if ascii {
						seq = asciiGuard(in.name, lb, seq, asFailure)
					}
					return seq
				}
				r, ok := in.reopen()
				if !ok {
					return func(yield func(*ima.Entry, error) bool) {
						yield(nil, errors.New("list cannot be read twice"))
					}
				}
				return scanned(in.name, ima.ScanList(r, o))
			}
			if !in.seekable {
				opts.InlinePadded = true // one pass: stdin, a pipe
			}
			rep, err := replay.Check(open, target, opts)
			if err != nil {
				return inputErr(err)
			}
			_ = ignore
			bypass := head.bypass(rep)
			evidence, err := adopterEvidence(adopter, bypass, target, rep)
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(c.stdout, checkJSON(rep, bypass, evidence)); err != nil {
					return err
				}
			} else {
				printCheck(c.stdout, rep)
				if bypass != nil {
					printBypass(c.stdout, bypass)
				}
				if evidence != nil {
					printAdopter(c.stdout, evidence)
				}
			}
			if tErr := templateMismatches(c, in.name, &rep.Result, ascii); tErr != nil {
				return tErr
			}
			switch err := rep.Err(); {
			case err == nil && evidence != nil && !evidence.Matched:
				return failed("%s: the adopter's list is no evidence: %s", in.name, evidence.Problem)
			case err == nil:
				return nil
			case errors.Is(err, replay.ErrNothingChecked):
				return failed("%s: no PCR that the list extends is in the PCR values given (list banks %v)", in.name, rep.Banks)
			default:
				var me *replay.MismatchError
				if errors.As(err, &me) {
					return failed("%s: %s PCR %d does not match", in.name, me.Bank, me.PCR)
				}
				return failed("%v", err)
			}
		},
	}
	lf.register(cmd)
	cmd.Flags().StringArrayVar(&srcs, "pcrs", nil, "PCR values to check against (repeatable): ALG,FILE | YAML | JSON | sysfs DIR")
	cmd.Flags().BoolVar(&ignore, "ignore-violations", false, "accepted for evmctl compatibility; violations are always replayed as 0xFF")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the verdict as JSON")
	cmd.Flags().StringArrayVar(&banksFlag, "bank", nil, "check only these banks (default: every bank in the PCR values)")
	cmd.Flags().StringVar(&adopter, "adopter-list", "", "for a TPM-bypass list adopted by a late TPM: the adopter's own list (imago agent --adopt-kernel-list), checked against the same PCR values as the evidence for the real boot aggregate")
	exitStatus(cmd, withCanceled("0 every bank matches", "1 a bank does not match, or a listed template digest does not match its data", "2 bad usage, or input that cannot be read or parsed")...)
	return cmd
}

func printCheck(w io.Writer, rep *replay.Report) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	for _, ch := range rep.Checks {
		if ch.Matched {
			fmt.Fprintf(bw, "%s PCR-%02d: matched at entry %d of %d (%s): %x\n",
				ch.Bank, ch.PCR, ch.Prefix, rep.Entries, ch.Variant, ch.Want)
		} else {
			fmt.Fprintf(bw, "%s PCR-%02d: MISMATCH: TPM %x, list replays to %x\n",
				ch.Bank, ch.PCR, ch.Want, ch.Got)
		}
	}
	verdict := "matched"
	if !rep.Matched() {
		verdict = "NOT matched"
	}
	fmt.Fprintf(bw, "%s: %d entries, %d violations, %d template digest mismatches\n",
		verdict, rep.Entries, rep.Violations, rep.TemplateMismatchCount)
}

type checkEntryJSON struct {
	Bank    string `json:"bank"`
	PCR     int    `json:"pcr"`
	Matched bool   `json:"matched"`
	Entry   int    `json:"entry,omitempty"`
	Variant string `json:"variant,omitempty"`
	Want    string `json:"want"`
	Got     string `json:"got"`
}

type mismatchJSON struct {
	Entry    int    `json:"entry"`
	PCR      int    `json:"pcr"`
	Bank     string `json:"bank"`
	Listed   string `json:"listed"`
	Computed string `json:"computed"`
}

func checkJSON(rep *replay.Report, bypass *bootAggJSON, adopter *adopterJSON) any {
	out := struct {
		Matched            bool             `json:"matched"`
		BootAggregate      *bootAggJSON     `json:"boot_aggregate,omitempty"`
		Adopter            *adopterJSON     `json:"adopter,omitempty"`
		Entries            int              `json:"entries"`
		Violations         int              `json:"violations"`
		Checks             []checkEntryJSON `json:"checks"`
		TemplateMismatches int              `json:"template_mismatches"`
		FirstMismatches    []mismatchJSON   `json:"first_template_mismatches,omitempty"`
	}{Matched: rep.Matched() && (adopter == nil || adopter.Matched), BootAggregate: bypass, Adopter: adopter, Entries: rep.Entries, Violations: rep.Violations, TemplateMismatches: rep.TemplateMismatchCount}
	for _, ch := range rep.Checks {
		j := checkEntryJSON{Bank: ch.Bank.String(), PCR: ch.PCR, Matched: ch.Matched,
			Want: hex.EncodeToString(ch.Want), Got: hex.EncodeToString(ch.Got)}
		if ch.Matched {
			j.Entry = ch.Prefix
			j.Variant = ch.Variant.String()
		}
		out.Checks = append(out.Checks, j)
	}
	for _, m := range rep.TemplateMismatches {
		out.FirstMismatches = append(out.FirstMismatches, mismatchJSON{m.Entry, m.PCR, m.Bank.String(),
			hex.EncodeToString(m.Listed), hex.EncodeToString(m.Computed)})
	}
	return out
}

// scanned turns a read error into an input error that names the file.
func scanned(name string, seq iter.Seq2[*ima.Entry, error]) iter.Seq2[*ima.Entry, error] {
	return func(yield func(*ima.Entry, error) bool) {
		for e, err := range seq {
			if err != nil {
				yield(nil, inputErr(fmt.Errorf("%s: %w", name, err)))
				return
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}
