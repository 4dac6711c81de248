package main

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/tpm"
)

func newTPMCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tpm",
		Short: "Talk to a TPM",
	}
	cmd.AddCommand(newTPMPCRReadCommand(c))
	return cmd
}

func newTPMPCRReadCommand(c *cli) *cobra.Command {
	var (
		uri     string
		asJSON  bool
		banks   []string
		indexes string
	)
	cmd := &cobra.Command{
		Use:   "pcrread --tpm URI [--json]",
		Short: "Read PCRs from a TPM",
		Long: `Read PCRs of every allocated bank (or --bank ones) from a TPM. The text form is
tpm2_pcrread's; --json prints imago's PCR shape, the one 'log replay --json'
prints and 'log check --pcrs' reads: {"sha256": {"10": "<hex>"}}.

--tpm: auto | /dev/tpmrmN | tcp://HOST:PORT | unix:///PATH | sim | none.

Exit status: 0 read, 2 bad usage, 3 no TPM there (or the simulator is not
built in).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			idx, err := parseIndexes(indexes)
			if err != nil {
				return err
			}
			var want []pcr.Bank
			if len(banks) > 0 {
				if want, err = parseBanks(banks); err != nil {
					return err
				}
			}
			if err := tpm.CheckURI(uri); err != nil {
				return usagef("--tpm: %v", err)
			}
			t, err := tpm.Open(uri)
			if err != nil {
				if errors.Is(err, tpm.ErrNoTPM) || errors.Is(err, tpm.ErrDisabled) || errors.Is(err, tpm.ErrSimulatorNotBuilt) {
					return &unsupportedError{err}
				}
				return err
			}
			defer t.Close()
			if want == nil {
				if want, err = t.Banks(); err != nil {
					return err
				}
			}
			set, err := t.ReadPCRs(want, idx)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, set)
			}
			w := bufio.NewWriter(c.stdout)
			for _, b := range want {
				fmt.Fprintf(w, "  %s:\n", b)
				for _, i := range set.Indexes(b) {
					v, _ := set.Get(b, i)
					fmt.Fprintf(w, "    %-2d: 0x%X\n", i, v)
				}
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&uri, "tpm", "auto", "TPM: auto | /dev/tpmrmN | tcp://HOST:PORT | unix:///PATH | sim")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"<bank>": {"<pcr>": "<hex>"}}`)
	cmd.Flags().StringArrayVar(&banks, "bank", nil, "read only these banks (repeatable; default: every allocated bank)")
	cmd.Flags().StringVar(&indexes, "pcrs", "0-23", "PCR indexes: a list of N and N-M")
	return cmd
}

// parseIndexes parses "0-7,10" style PCR lists.
func parseIndexes(s string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b > 23 || a > b {
			return nil, usagef("--pcrs %q: want N or N-M within 0-23, comma-separated", s)
		}
		for i := a; i <= b; i++ {
			if !seen[i] {
				seen[i] = true
				out = append(out, i)
			}
		}
	}
	return out, nil
}
