package main

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/attest"
)

func newVerifierCheckCommand(c *cli) *cobra.Command {
	var (
		sf     serverFlags
		node   string
		nonce  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "check EVIDENCE --node NODE --server URL [--ca C] [--nonce HEX] [--json]",
		Short: "Verify offline evidence ('imago attest --offline') against an enrolled node",
		Long: `Verify a file written by 'imago attest --offline': the quote with the node's
enrolled AK, the PCRs, the firmware log and the whole list with the node's
runtime policy, from the first entry. The node's state is not changed.
--nonce checks that the evidence quotes the nonce you gave the host ('-' reads
EVIDENCE from stdin).

Exit status: 0 pass, 1 fail, 2 bad evidence, unknown node or verifier
unreachable.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if node == "" {
				return usagef("--node is required")
			}
			cl, err := sf.client(true)
			if err != nil {
				return err
			}
			var data []byte
			if args[0] == "-" {
				data, err = io.ReadAll(io.LimitReader(c.stdin, attest.MaxEvidenceSize+1))
			} else {
				data, err = readBounded(args[0], int64(attest.MaxEvidenceSize))
			}
			if err != nil {
				return inputErr(err)
			}
			ev, err := attest.DecodeEvidence(data)
			if err != nil {
				return inputErr(err)
			}
			if nonce != "" {
				want, err := hex.DecodeString(nonce)
				if err != nil {
					return usagef("--nonce: %v", err)
				}
				if !bytes.Equal(want, ev.Nonce) {
					return failed("the evidence quotes nonce %x, not %s", ev.Nonce, nonce)
				}
			}
			res, err := cl.Check(cmd.Context(), node, ev)
			if err != nil {
				return verifierErr(err)
			}
			if err := printResult(c.stdout, res, asJSON); err != nil {
				return err
			}
			if res.Verdict != attest.VerdictPass {
				return silent(failed("node %s: evidence failed", node))
			}
			return nil
		},
	}
	sf.register(cmd)
	cmd.Flags().StringVar(&node, "node", "", "the node the evidence is from")
	cmd.Flags().StringVar(&nonce, "nonce", "", "the nonce (hex) the evidence must quote")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// printResult prints a round's result: one line per failure, then the
// verdict.
func printResult(w io.Writer, res *attest.Result, asJSON bool) error {
	if asJSON {
		return writeJSON(w, res)
	}
	for _, f := range res.Failures {
		printFailure(w, f)
	}
	_, err := fmt.Fprintf(w, "%s: %s (state %s, %d entries verified, round %d)\n", res.Node, res.Verdict, res.State, res.Entries, res.Round)
	return err
}
