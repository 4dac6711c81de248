package main

import (
	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/agent"
)

func newLateCommand(c *cli) *cobra.Command {
	var (
		socket string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "late",
		Short: "Run the agent's late stage now",
		Long: `Tell a deferred agent to run its late stage now, as the kernel's
late_initcall_sync does: open the TPM; found, initialise with the real boot
aggregate; not found, TPM-bypass with a zero aggregate. Either way the first
entry is boot_aggregate_late, followed by the measurements queued meanwhile.
An agent already initialised does nothing. For a unit ordered after the TPM
is up (After=dev-tpmrm0.device, or tpm2-abrmd).

Prints the status afterwards. Exit status: 0 done, 2 the agent cannot be
reached or failed to initialise.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := agent.RequestLate(cmd.Context(), socket)
			if err != nil {
				return clientErr(err)
			}
			return printStatus(c.stdout, st, asJSON)
		},
	}
	socketFlag(cmd, &socket)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}
