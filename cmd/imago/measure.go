package main

import (
	"bufio"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/agent"
)

func newMeasureCommand(c *cli) *cobra.Command {
	var (
		socket string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "measure PATH...",
		Short: "Ask the running agent to measure files",
		Long: `Ask the running agent to measure files. It answers once each entry is in the
durable list, exported and extended into the TPM (or, while it waits for the
TPM, queued durably). One line per path: measured, queued, unchanged (measured
before and not changed since), duplicate (an identical record is listed) or
error. Paths are taken as bytes: any name the filesystem allows is measured
as that file (--json writes a name that is not UTF-8 as {"hex": ...}).

Only regular files are measured, as the kernel's IMA measures them; FIFOs,
devices and directories are refused. Hashing one file is bounded by the
agent's --hash-timeout.

Exit status: 0 every path measured (or queued, unchanged, duplicate), 1 the
agent has failed (its list and the TPM can no longer be kept in step: see
'imago status'), 2 a path could not be measured, or the agent cannot be
reached, refused the request or is busy.
`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := agent.MeasurePaths(cmd.Context(), socket, args)
			if err != nil {
				return clientErr(err)
			}
			if asJSON {
				if err := writeJSON(c.stdout, res); err != nil {
					return err
				}
			} else {
				w := bufio.NewWriter(c.stdout)
				for _, r := range res {
					switch r.Status {
					case agent.StatusError:
						fmt.Fprintf(w, "error %s: %s\n", r.Path, r.Error)
					case agent.StatusUnchanged:
						fmt.Fprintf(w, "%s %s\n", r.Status, r.Path)
					default:
						fmt.Fprintf(w, "%s %s %s\n", r.Status, r.Digest, r.Name)
					}
				}
				w.Flush()
			}
			n, failedN := 0, 0
			for _, r := range res {
				if err := r.Err(); err != nil {
					n++
					if errors.Is(err, agent.ErrFailed) {
						failedN++
					}
				}
			}
			switch {
			case failedN > 0:
				return silent(failed("measure: the agent has failed; %d of %d path(s) not measured", n, len(res)))
			case n > 0:
				return silent(inputErr(fmt.Errorf("measure: %d of %d path(s) not measured", n, len(res))))
			}
			return nil
		},
	}
	socketFlag(cmd, &socket)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	return cmd
}
