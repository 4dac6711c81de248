package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/agent"
)

func newStatusCommand(c *cli) *cobra.Command {
	var (
		socket string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the running agent's state",
		Long: `Show the running agent's state: deferred (waiting for the TPM), initialised,
bypass (no TPM: nothing extended) or failed; the boot aggregate's name; the
TPM, its banks, the hash, the template, the PCR and the number of entries and
of measurements queued while deferred. --json prints
{"state": "deferred", "aggregate": ..., "tpm": ..., "banks": [...], "hash": ...,
"template": ..., "pcr": 10, "entries": 0, "pending": 0}, with "error" (why the
agent failed, and how to recover) and "exports" (why the exports are not up
to date) when they apply, and "adoption" with --adopt-kernel-list: {"state":
"waiting"|"adopting"|"following"|"refused"|"failed", "tpm", "banks", "listed",
"adopted", "appeared_at" (entries listed when the TPM appeared), "resumed_at",
"violations", "lag_entries", "lag_seconds", "interval_seconds", "reason",
"error"}.

The agent fails when its list and the TPM can no longer be kept in step: the
TPM was reset or replaced under it, or an extend whose outcome the TPM
cannot tell. It then lists and extends nothing more; the error says how to
recover (reboot, or move the state directory aside and restart).

Exit status: 0 the agent answered and has not failed, 1 it has failed, 2 it
cannot be reached or refused the request.
`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := agent.QueryStatus(cmd.Context(), socket)
			if err != nil {
				return clientErr(err)
			}
			if err := printStatus(c.stdout, st, asJSON); err != nil {
				return err
			}
			if st.State == "failed" {
				return silent(failed("agent failed: %s", st.Error))
			}
			return nil
		},
	}
	socketFlag(cmd, &socket)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func printStatus(w io.Writer, st agent.Status, asJSON bool) error {
	if asJSON {
		return writeJSON(w, st)
	}
	agg := st.Aggregate
	if agg == "" {
		agg = "(none yet)"
	}
	banks := strings.Join(st.Banks, ",")
	if banks == "" {
		banks = "(none)"
	}
	_, err := fmt.Fprintf(w, "state:     %s\naggregate: %s\ntpm:       %s\nbanks:     %s\nhash:      %s\ntemplate:  %s\npcr:       %d\nentries:   %d\npending:   %d\n",
		st.State, agg, st.TPM, banks, st.Hash, st.Template, st.PCR, st.Entries, st.Pending)
	if err == nil && st.Error != "" {
		_, err = fmt.Fprintf(w, "error:     %s\n", st.Error)
	}
	if err == nil && st.Exports != "" {
		_, err = fmt.Fprintf(w, "exports:   %s\n", st.Exports)
	}
	if err == nil && st.Adoption != nil {
		err = printAdoption(w, st.Adoption)
	}
	return err
}
