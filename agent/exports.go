package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// Export file names, as securityfs names them (ima-spec.md §2.1).
const (
	exportBinary     = "binary_runtime_measurements"
	exportASCII      = "ascii_runtime_measurements"
	exportCount      = "runtime_measurements_count"
	exportViolations = "violations"
)

// exports keeps the securityfs-style files in the runtime directory:
// binary_ and ascii_runtime_measurements_<alg> per bank (the unsuffixed
// names are symlinks to the _sha1 files), runtime_measurements_count and
// violations. Lists are appended to, never rewritten, per entry.
type exports struct {
	dir   string
	order byteOrder
	banks []BankInfo
	bin   []*os.File
	asc   []*os.File
	count *os.File
	n     int
	viol  int // violations listed (the securityfs violations counter)
	buf   []byte
}

// exportName is the per-bank suffix: the kernel hash name, or tpm_alg_<hex>
// for a bank the kernel cannot map.
func exportName(b pcr.Bank) string {
	if a, ok := ima.HashAlgForBank(b); ok {
		return a.String()
	}
	return b.String()
}

// newExports creates the export files afresh (empty lists, count 0).
func newExports(dir string, banks []BankInfo, order byteOrder) (*exports, error) {
	x := &exports{dir: dir, order: order, banks: banks}
	open := func(name string) (*os.File, error) {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("agent: exports: %w", err)
		}
		return f, nil
	}
	fail := func(err error) (*exports, error) {
		x.close()
		return nil, err
	}
	for _, b := range banks {
		f, err := open(exportBinary + "_" + exportName(b.Bank))
		if err != nil {
			return fail(err)
		}
		x.bin = append(x.bin, f)
		if f, err = open(exportASCII + "_" + exportName(b.Bank)); err != nil {
			return fail(err)
		}
		x.asc = append(x.asc, f)
	}
	for _, name := range []string{exportBinary, exportASCII} {
		link := filepath.Join(dir, name)
		if err := os.Remove(link); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fail(fmt.Errorf("agent: exports: %w", err))
		}
		if err := os.Symlink(name+"_sha1", link); err != nil {
			return fail(fmt.Errorf("agent: exports: %w", err))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, exportViolations), []byte("0\n"), 0o644); err != nil {
		return fail(fmt.Errorf("agent: exports: %w", err))
	}
	f, err := os.OpenFile(filepath.Join(dir, exportCount), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fail(fmt.Errorf("agent: exports: %w", err))
	}
	x.count = f
	if err := x.writeCount(); err != nil {
		return fail(err)
	}
	return x, nil
}

// append adds e to every list. digests holds the per-bank template digests
// (nil in bypass: computed here). A violation entry shows zeros of each
// bank's width (ima-spec.md §5.2) and counts in the violations file.
func (x *exports) append(e *ima.Entry, digests map[pcr.Bank][]byte) error {
	violation := e.IsViolation()
	for i, b := range x.banks {
		d, ok := digests[b.Bank]
		if violation {
			d, ok = make([]byte, b.Size), true
		}
		if !ok {
			d = bankDigests(e, e.Digest, []BankInfo{b})[b.Bank]
		}
		var err error
		if x.buf, err = appendBinary(x.buf[:0], e, d, x.order); err != nil {
			return err
		}
		if _, err := x.bin[i].Write(x.buf); err != nil {
			return fmt.Errorf("agent: exports: %w", err)
		}
		x.buf = appendASCII(x.buf[:0], e, d)
		if _, err := x.asc[i].Write(x.buf); err != nil {
			return fmt.Errorf("agent: exports: %w", err)
		}
	}
	x.n++
	if violation {
		x.viol++
		if err := x.writeViolations(); err != nil {
			return err
		}
	}
	return x.writeCount()
}

// writeViolations rewrites the violations counter (atomically, by rename).
func (x *exports) writeViolations() error {
	tmp := filepath.Join(x.dir, "."+exportViolations+".tmp")
	if err := os.WriteFile(tmp, append(strconv.AppendInt(nil, int64(x.viol), 10), '\n'), 0o644); err != nil {
		return fmt.Errorf("agent: exports: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(x.dir, exportViolations)); err != nil {
		return fmt.Errorf("agent: exports: %w", err)
	}
	return nil
}

// writeCount rewrites runtime_measurements_count in place; the count only
// grows, so the new text covers the old.
func (x *exports) writeCount() error {
	s := strconv.AppendInt(nil, int64(x.n), 10)
	if _, err := x.count.WriteAt(append(s, '\n'), 0); err != nil {
		return fmt.Errorf("agent: exports: %w", err)
	}
	return nil
}

func (x *exports) close() error {
	var errs []error
	for _, f := range append(append([]*os.File{x.count}, x.bin...), x.asc...) {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}
