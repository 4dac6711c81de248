package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/eventlog"
	"github.com/imago-ima/imago/pcr"
)

func newEventlogCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eventlog",
		Short: "Read and replay TCG firmware event logs (binary_bios_measurements)",
		Long: `Read and replay TCG PC Client firmware event logs, as Linux exposes them in
/sys/kernel/security/tpm0/binary_bios_measurements: SHA-1 logs (TPM 1.2) and
crypto-agile logs with any set of banks. FILE may be '-' for stdin.`,
	}
	cmd.AddCommand(newEventlogShowCommand(c), newEventlogReplayCommand(c))
	return cmd
}

func (c *cli) readEventlog(ctx context.Context, name string) (*eventlog.Log, error) {
	in, err := c.open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	l, err := eventlog.ReadLog(in.r)
	if err != nil {
		return nil, inputErr(fmt.Errorf("%s: %w", in.name, err))
	}
	return l, nil
}

func newEventlogShowCommand(c *cli) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show FILE",
		Short: "Print the events of a firmware event log",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := c.readEventlog(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(c.stdout, eventlogJSON(l))
			}
			w := bufio.NewWriter(c.stdout)
			defer w.Flush()
			fmt.Fprintf(w, "format: %s, %d events", l.Format, len(l.Events))
			if l.SpecID != nil {
				var names []string
				for _, b := range l.SpecID.Banks() {
					names = append(names, b.String())
				}
				fmt.Fprintf(w, ", banks %s", strings.Join(names, ","))
			}
			if l.Filler > 0 {
				fmt.Fprintf(w, ", %d filler bytes 0x%02x", l.Filler, l.FillerByte)
			}
			fmt.Fprintln(w)
			for _, e := range l.Events {
				pcrName := fmt.Sprint(e.PCR)
				if e.PCR == eventlog.PCRNone {
					pcrName = "-1"
				}
				fmt.Fprintf(w, "%4d PCR %-2s %s size %d\n", e.Seq, pcrName, e.Type, len(e.Data))
				for _, d := range e.Digests {
					fmt.Fprintf(w, "       %s:%x\n", d.Bank, d.Sum)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	exitStatus(cmd, withCanceled("0 the log was printed", "2 bad usage, or a log that cannot be read or parsed")...)
	return cmd
}

type eventJSON struct {
	Seq     int               `json:"seq"`
	Offset  int64             `json:"offset"`
	PCR     int64             `json:"pcr"`
	Type    string            `json:"type"`
	TypeID  uint32            `json:"type_id"`
	Digests map[string]string `json:"digests"`
	Data    string            `json:"data"`
}

func eventlogJSON(l *eventlog.Log) any {
	out := struct {
		Format string      `json:"format"`
		Banks  []string    `json:"banks,omitempty"`
		Filler int64       `json:"filler_bytes,omitempty"`
		Events []eventJSON `json:"events"`
	}{Format: l.Format.String(), Filler: l.Filler, Events: []eventJSON{}}
	if l.SpecID != nil {
		for _, b := range l.SpecID.Banks() {
			out.Banks = append(out.Banks, b.String())
		}
	}
	for _, e := range l.Events {
		j := eventJSON{Seq: e.Seq, Offset: e.Offset, PCR: int64(e.PCR), Type: e.Type.String(), TypeID: uint32(e.Type),
			Digests: map[string]string{}, Data: hex.EncodeToString(e.Data)}
		if e.PCR == eventlog.PCRNone {
			j.PCR = -1
		}
		for _, d := range e.Digests {
			j.Digests[d.Bank.String()] = hex.EncodeToString(d.Sum)
		}
		out.Events = append(out.Events, j)
	}
	return out
}

func newEventlogReplayCommand(c *cli) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "replay FILE",
		Short: "Replay a firmware event log into PCR values",
		Long: `Replay a firmware event log into the PCR values the TPM holds after it, for every
bank the log carries: EV_NO_ACTION events and events on PCR -1 are never
extended; a StartupLocality event sets PCR 0's starting locality; an H-CRTM
start begins PCR 0 at locality 4; PCRs 17-22 start at all 0xFF. Only PCRs that
have events (and PCR 0) are printed.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := c.readEventlog(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			set, info, err := l.Replay()
			if err != nil {
				return inputErr(fmt.Errorf("%s: %w", args[0], err))
			}
			if asJSON {
				return writeJSON(c.stdout, struct {
					PCRs pcr.Set `json:"pcrs"`
				}{set})
			}
			w := bufio.NewWriter(c.stdout)
			defer w.Flush()
			fmt.Fprintf(w, "format: %s, %d events, %d extended", info.Format, info.Events, info.Extended)
			if info.StartupLocality {
				fmt.Fprintf(w, ", StartupLocality %d", info.InitialPCR0)
			}
			if info.HCRTM {
				fmt.Fprint(w, ", H-CRTM")
			}
			if len(info.Unknown) > 0 {
				fmt.Fprintf(w, ", banks not computable: %v", info.Unknown)
			}
			fmt.Fprintln(w)
			for _, b := range set.Banks() {
				for _, i := range set.Indexes(b) {
					fmt.Fprintf(w, "%s PCR-%02d: %x\n", b, i, set[b][i])
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"pcrs": {"<bank>": {"<n>": "<hex>"}}}`)
	exitStatus(cmd, withCanceled("0 replayed", "2 bad usage, or a log that cannot be read or parsed")...)
	return cmd
}
