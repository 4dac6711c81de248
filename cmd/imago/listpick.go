package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/internal/ctxio"
	"github.com/imago-ima/imago/pcr"
)

// Why the binary list is preferred: the kernel prints a file name into
// ascii_runtime_measurements byte for byte, newline characters included
// (and the agent's export does the same), so a name holding a newline
// splits its line, and the rest of the name reads as another line, even as
// a well-formed entry that was never measured. The binary list frames every
// field with its length and is exact. Commands that must be exact read the
// binary list whenever they are given one: a folder holding the lists
// (securityfs's ima folder, the agent's --runtime-dir) or both files.

const asciiAmbiguity = "a file name holding a newline character does this: the kernel prints names raw, " +
	"so the ascii list is ambiguous there; read the binary list (binary_runtime_measurements), which is exact"

// listArgs is the Args rule of the log commands: FILE, or an ascii and a
// binary list of the same measurements.
func listArgs(cmd *cobra.Command, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usagef("%s: want FILE, a directory, or an ascii and a binary list, got %d arguments", commandName(cmd), len(args))
	}
	return nil
}

// listHelp is what the log commands say about FILE.
const listHelp = `FILE is a list file, '-' for standard input, or a directory holding the lists
(securityfs's ima folder, the agent's --runtime-dir), of which the binary
list is read. Given an ascii and a binary list of the same measurements, the
binary one is read. The binary list is exact; the ascii list is not always:
the kernel prints a file name raw, so a name holding a newline character
splits its line (see the README).`

// pickList returns the one list to read from the FILE arguments:
//
//   - FILE, or "-" for standard input;
//   - a folder: its binary_runtime_measurements (or, for a bank,
//     binary_runtime_measurements_<bank>), else its ascii list;
//   - two files: the binary one of them (the other must be ascii).
func pickList(ctx context.Context, args []string, bank pcr.Bank) (string, error) {
	if len(args) == 2 {
		var bin, asc []string
		for _, a := range args {
			isASCII, err := sniffASCII(ctx, a)
			if err != nil {
				return "", inputErr(err)
			}
			if isASCII {
				asc = append(asc, a)
			} else {
				bin = append(bin, a)
			}
		}
		if len(bin) != 1 {
			return "", usagef("give one ascii and one binary list, or one FILE (%s and %s are both %s)",
				args[0], args[1], map[bool]string{true: "binary", false: "ascii"}[len(bin) == 2])
		}
		return bin[0], nil
	}
	name := args[0]
	if name == "-" {
		return name, nil
	}
	st, err := os.Stat(name)
	if err != nil || !st.IsDir() {
		return name, nil // open reports it
	}
	var cands []string
	if bank != 0 {
		cands = append(cands, "binary_runtime_measurements_"+bank.String())
	}
	cands = append(cands, "binary_runtime_measurements", "ascii_runtime_measurements")
	if bank != 0 {
		cands = append(cands, "ascii_runtime_measurements_"+bank.String())
	}
	for _, c := range cands {
		p := filepath.Join(name, c)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", inputErr(fmt.Errorf("%s: a directory without binary_runtime_measurements or ascii_runtime_measurements", name))
}

// sniffASCII reports whether a list file starts like an ascii list.
func sniffASCII(ctx context.Context, name string) (bool, error) {
	f, err := ctxio.Open(ctx, name)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 4096)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && err != io.EOF {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return ima.LooksASCII(buf[:n]), nil
}

// listedBank is the bank of an ascii list's template digest column: the
// --list-bank or file name's, else the column's width.
func listedBank(lb pcr.Bank, size int) pcr.Bank {
	if lb != 0 {
		return lb
	}
	for _, b := range pcr.Banks {
		if b.Size() == size && b != pcr.SM3256 {
			return b
		}
	}
	return 0
}

// asciiError is an ascii list line whose listed template digest does not
// match its printed fields.
type asciiError struct {
	name string
	line int
}

func (e *asciiError) Error() string {
	return fmt.Sprintf("%s: line %d: the listed template digest does not match the printed fields (the line was changed, or "+
		"the name goes on in the next line); %s", e.name, e.line, asciiAmbiguity)
}

// asciiGuard passes on the entries of an ascii list (one per line) while
// each line's listed template digest matches its printed fields; at the
// first that does not, it stops with an *asciiError made into the
// command's exit status by wrap. Violations (zero digests) pass.
func asciiGuard(name string, lb pcr.Bank, seq iter.Seq2[*ima.Entry, error], wrap func(error) error) iter.Seq2[*ima.Entry, error] {
	return func(yield func(*ima.Entry, error) bool) {
		line := 0
		for e, err := range seq {
			line++
			if err == nil && !e.IsViolation() {
				if b := listedBank(lb, len(e.Digest)); b != 0 && !bytes.Equal(e.TemplateDigest(b), e.Digest) {
					yield(nil, wrap(&asciiError{name: name, line: line}))
					return
				}
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}
