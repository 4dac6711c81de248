package main

import (
	"bufio"
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
durable list, extended into the TPM and exported (or, while it waits for the
TPM, queued durably). One line per path: measured, queued, unchanged (measured
before and not changed since), duplicate (an identical record is listed) or
error.

Exit status: 0 every path measured, 2 a path could not be measured or the
agent cannot be reached.`,
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
			n := 0
			for _, r := range res {
				if r.Status == agent.StatusError {
					n++
				}
			}
			if n > 0 {
				return silent(inputErr(fmt.Errorf("measure: %d of %d path(s) not measured", n, len(res))))
			}
			return nil
		},
	}
	socketFlag(cmd, &socket)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	return cmd
}
