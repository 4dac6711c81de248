package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/replay"
)

func newLogCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Read, convert, replay and check IMA measurement lists",
		Long: `Read, convert, replay and check IMA measurement lists, as the kernel writes them
to securityfs: binary_runtime_measurements[_<alg>] and
ascii_runtime_measurements[_<alg>]. The format (ascii or binary), the byte order
of a binary list and the width of its template digests are detected; a
per-bank file's bank is taken from its name.

` + listHelp,
	}
	cmd.AddCommand(newLogShowCommand(c), newLogConvertCommand(c), newLogReplayCommand(c), newLogCheckCommand(c))
	return cmd
}

// listFlags are the reading options every log subcommand shares.
type listFlags struct {
	bank  string // --list-bank: the bank of the listed digests
	order string // --byte-order: le, be or auto
}

func (f *listFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.bank, "list-bank", "", "bank of the listed template digests (default: from the file name, else from their width)")
	cmd.Flags().StringVar(&f.order, "byte-order", "auto", "byte order of a binary list: auto, le or be")
}

func (f *listFlags) options() (ima.ReaderOptions, error) {
	var o ima.ReaderOptions
	switch strings.ToLower(f.order) {
	case "auto", "":
	case "le", "little":
		o.Order = binary.LittleEndian
	case "be", "big":
		o.Order = binary.BigEndian
	default:
		return o, usagef("--byte-order: want auto, le or be, got %q", f.order)
	}
	return o, nil
}

// pick chooses the list to read from the FILE arguments (pickList).
func (f *listFlags) pick(ctx context.Context, args []string) (string, error) {
	var b pcr.Bank
	if f.bank != "" {
		var err error
		if b, err = pcr.ParseBank(f.bank); err != nil {
			return "", usagef("--list-bank: %v", err)
		}
	}
	return pickList(ctx, args, b)
}

// listBank returns the bank named by --list-bank or the file name, or 0 to
// let the digest width decide.
func (f *listFlags) listBank(name string) (pcr.Bank, error) {
	if f.bank != "" {
		b, err := pcr.ParseBank(f.bank)
		if err != nil {
			return 0, usagef("--list-bank: %v", err)
		}
		return b, nil
	}
	if b, ok := bankFromListName(name); ok {
		return b, nil
	}
	return 0, nil
}

// openList opens the list that the FILE arguments name (pickList).
func (c *cli) openList(ctx context.Context, args []string, f *listFlags) (*input, *ima.ListReader, error) {
	opts, err := f.options()
	if err != nil {
		return nil, nil, err
	}
	name, err := f.pick(ctx, args)
	if err != nil {
		return nil, nil, err
	}
	if b, err := f.listBank(name); err != nil {
		return nil, nil, err
	} else if b != 0 {
		opts.DigestSize = b.Size()
	}
	in, err := c.open(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return in, ima.NewListReader(in.r, opts), nil
}

// entries yields a list's entries, turning a read error into an input error
// that names the file.
func entries(name string, lr *ima.ListReader) iter.Seq2[*ima.Entry, error] {
	return func(yield func(*ima.Entry, error) bool) {
		for e, err := range lr.All() {
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

func newLogShowCommand(c *cli) *cobra.Command {
	var (
		lf      listFlags
		asJSON  bool
		summary bool
	)
	cmd := &cobra.Command{
		Use:   "show FILE",
		Short: "Print a measurement list as the kernel's ascii lines, or as JSON",
		Long: `Print a measurement list (ascii or binary, detected) in the kernel's ascii form,
or with --json as a JSON array with one object per entry and every template
field decoded: digests, names, signature headers, buffers, xattrs, uid/gid/mode.

An ascii list is read only as far as each line's template digest matches its
printed fields: a line that does not is named, with why, and the command
stops there (exit 2).

` + listHelp,
		Args: listArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			in, lr, err := c.openList(cmd.Context(), args, &lf)
			if err != nil {
				return err
			}
			defer in.Close()
			w := bufio.NewWriterSize(c.stdout, 1<<16)
			defer w.Flush()
			n, viol := 0, 0
			var buf []byte
			if asJSON {
				w.WriteString("[")
			}
			seq := entries(in.name, lr)
			if lr.Format() == ima.FormatASCII {
				lb, _ := lf.listBank(in.name)
				seq = asciiGuard(in.name, lb, seq, inputErr)
			}
			for e, err := range seq {
				if err != nil {
					if asJSON {
						w.WriteString("\n]\n")
					}
					w.Flush()
					return err
				}
				buf = buf[:0]
				if asJSON {
					if n > 0 {
						buf = append(buf, ',')
					}
					buf = append(buf, '\n')
					buf = ima.AppendJSON(buf, e)
				} else {
					buf = ima.AppendASCII(buf, e)
				}
				w.Write(buf)
				n++
				if e.IsViolation() {
					viol++
				}
			}
			if asJSON {
				w.WriteString("\n]\n")
			}
			if summary {
				fmt.Fprintf(c.stderr, "%s: %s list, %d entries, %d violations, %d-byte template digests, %s\n",
					in.name, lr.Format(), n, viol, lr.DigestSize(), orderName(lr.ByteOrder()))
			}
			return nil
		},
	}
	lf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of decoded entries")
	cmd.Flags().BoolVar(&summary, "summary", false, "also print format, byte order and counts to stderr")
	exitStatus(cmd, withCanceled("0 the list was printed", "2 bad usage; input that cannot be read or parsed; an ascii line whose template digest does not match its fields")...)
	return cmd
}

func orderName(o binary.ByteOrder) string {
	switch o {
	case binary.BigEndian:
		return "big-endian"
	case nil:
		return "byte order unknown"
	}
	return "little-endian"
}

func newLogConvertCommand(c *cli) *cobra.Command {
	var (
		lf        listFlags
		to        string
		canonical bool
		out       string
	)
	cmd := &cobra.Command{
		Use:   "convert --to ascii|binary|json FILE [-o OUT]",
		Short: "Convert a measurement list between ascii, binary and JSON",
		Long: `Convert a measurement list between the kernel's ascii and binary forms, or to
JSON. A binary list keeps its byte order unless --canonical asks for the
little-endian ima_canonical_fmt form. Rewriting a big-endian list in
little-endian changes the hashed field lengths, so its template digests are
recomputed as a kernel booted with ima_canonical_fmt would have listed them;
such a list no longer replays to the original TPM's PCRs (a warning says so).
An ascii list becomes a little-endian binary list. OUT is written whole or not
at all.

` + listHelp,
		Args: listArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var format string
			switch to {
			case "ascii", "binary", "json":
				format = to
			case "":
				return usagef("convert: --to is required (ascii, binary or json)")
			default:
				return usagef("convert: --to: want ascii, binary or json, got %q", to)
			}
			in, lr, err := c.openList(cmd.Context(), args, &lf)
			if err != nil {
				return err
			}
			defer in.Close()
			var dst io.Writer = c.stdout
			var file *os.File
			if out != "" && out != "-" {
				// Written whole or not at all: a temporary file beside OUT,
				// renamed over it at the end, removed on any error.
				file, err = os.CreateTemp(filepath.Dir(out), ".imago-convert-*")
				if err != nil {
					return inputErr(err)
				}
				defer func() {
					file.Close()
					os.Remove(file.Name()) // gone after the rename
				}()
				dst = file
			}
			w := bufio.NewWriterSize(dst, 1<<16)
			var buf []byte
			n, reordered := 0, 0
			if format == "json" {
				w.WriteString("[")
			}
			for e, err := range entries(in.name, lr) {
				if err != nil {
					return err
				}
				buf = buf[:0]
				switch format {
				case "ascii":
					buf = ima.AppendASCII(buf, e)
				case "json":
					if n > 0 {
						buf = append(buf, ',')
					}
					buf = append(buf, '\n')
					buf = ima.AppendJSON(buf, e)
				case "binary":
					order := lr.ByteOrder()
					if order == nil || lr.Format() == ima.FormatASCII || canonical {
						order = binary.LittleEndian
					}
					if lr.Format() == ima.FormatBinary && lr.ByteOrder() != order {
						e, err = e.Reorder(order)
						if err != nil {
							return inputErr(fmt.Errorf("%s: entry %d: %w", in.name, n, err))
						}
						reordered++
					}
					buf, err = ima.AppendBinary(buf, e, order)
					if err != nil {
						return inputErr(fmt.Errorf("%s: entry %d: %w", in.name, n, err))
					}
				}
				if _, err := w.Write(buf); err != nil {
					return err
				}
				n++
			}
			if format == "json" {
				w.WriteString("\n]\n")
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if file != nil {
				if err := file.Chmod(0o644); err != nil {
					return err
				}
				if err := file.Close(); err != nil {
					return err
				}
				if err := os.Rename(file.Name(), out); err != nil {
					return inputErr(err)
				}
			}
			if reordered > 0 {
				fmt.Fprintf(c.stderr, "imago: warning: %d entries rewritten from %s to little-endian; their template digests were recomputed and no longer match the original TPM's PCRs\n",
					reordered, orderName(lr.ByteOrder()))
			}
			return nil
		},
	}
	lf.register(cmd)
	cmd.Flags().StringVar(&to, "to", "", "output format: ascii, binary or json")
	cmd.Flags().BoolVar(&canonical, "canonical", false, "write a binary list in little-endian (ima_canonical_fmt)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to this file instead of stdout")
	exitStatus(cmd, withCanceled("0 converted", "2 bad usage, or input that cannot be read or parsed (OUT is then left as it was)")...)
	return cmd
}

// bankFlags parses repeated --bank ALG flags.
func parseBanks(names []string) ([]pcr.Bank, error) {
	if len(names) == 0 {
		return []pcr.Bank{pcr.SHA1, pcr.SHA256}, nil
	}
	var banks []pcr.Bank
	seen := map[pcr.Bank]bool{}
	for _, n := range names {
		for _, part := range strings.Split(n, ",") {
			b, err := pcr.ParseBank(strings.TrimSpace(part))
			if err != nil {
				return nil, usagef("--bank: %v", err)
			}
			if !b.Known() {
				return nil, usagef("--bank: imago cannot compute %s", b)
			}
			if !seen[b] {
				seen[b] = true
				banks = append(banks, b)
			}
		}
	}
	return banks, nil
}

func newLogReplayCommand(c *cli) *cobra.Command {
	var (
		lf     listFlags
		banks  []string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "replay FILE [--bank ALG]...",
		Short: "Replay a measurement list into PCR values",
		Long: `Replay a measurement list into the PCR values a TPM would hold, for every PCR
index its entries name, in each bank asked for (default sha1 and sha256; also
sha384, sha512, sm3_256). Each bank is extended with that bank's template digest,
computed from the template data; violations extend 0xFF as the kernel does.
Every listed template digest is checked against its data: a mismatch is
reported with its entry index and the exit status is 1.

` + listHelp,
		Args: listArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			bs, err := parseBanks(banks)
			if err != nil {
				return err
			}
			o, err := lf.options()
			if err != nil {
				return err
			}
			name, err := lf.pick(cmd.Context(), args)
			if err != nil {
				return err
			}
			lb, err := lf.listBank(name)
			if err != nil {
				return err
			}
			if lb != 0 {
				o.DigestSize = lb.Size()
			}
			in, err := c.open(cmd.Context(), name)
			if err != nil {
				return err
			}
			defer in.Close()
			ascii := in.isASCII()
			seq := scanned(in.name, ima.ScanList(in.r, o))
			if ascii {
				seq = asciiGuard(in.name, lb, seq, asFailure)
			}
			res, err := replay.Replay(seq, replay.Options{Banks: bs, ListBank: lb})
			if err != nil {
				return inputErr(err)
			}
			if asJSON {
				out := struct {
					Entries    int     `json:"entries"`
					Violations int     `json:"violations"`
					PCRs       pcr.Set `json:"pcrs"`
				}{res.Entries, res.Violations, res.PCRs}
				if err := writeJSON(c.stdout, out); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(c.stdout, "entries: %d\nviolations: %d\n", res.Entries, res.Violations)
				for _, b := range res.PCRs.Banks() {
					for _, i := range res.PCRs.Indexes(b) {
						fmt.Fprintf(c.stdout, "%s PCR-%02d: %x\n", b, i, res.PCRs[b][i])
					}
				}
			}
			return templateMismatches(c, in.name, res, ascii)
		},
	}
	lf.register(cmd)
	cmd.Flags().StringArrayVar(&banks, "bank", nil, "bank to replay (repeatable, or comma-separated): sha1, sha256, sha384, sha512, sm3_256")
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"entries": N, "violations": K, "pcrs": {...}}`)
	exitStatus(cmd, withCanceled("0 replayed", "1 a listed template digest does not match its data", "2 bad usage, or input that cannot be read or parsed")...)
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
