// Package pcrsrc loads PCR values from where people keep them: evmctl-style
// dumps, tpm2_pcrread output, imago JSON, and the Linux TPM sysfs folders.
// It is the edge that does the file I/O; parsing is in package pcr
// (ima-spec.md §4.4, §13.3).
//
// A source string (the CLI's --pcrs SRC) is one of:
//
//	ALG,FILE  one bank from FILE: evmctl "PCR-NN: HEX" (the only form that
//	          needs ALG), or the ALG bank of a tpm2_pcrread YAML or imago
//	          JSON dump, or of a sysfs TPM folder
//	FILE      a tpm2_pcrread YAML or imago JSON dump (all banks in it)
//	DIR       a sysfs TPM folder such as /sys/class/tpm/tpm0: every
//	          pcr-<alg>/<n> file (TPM 2.0, kernel >= 5.12), or the TPM 1.2
//	          "pcrs" file (DIR/pcrs or DIR/device/pcrs) as sha1
//	-         a dump on standard input (as FILE)
package pcrsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/imago-ima/imago/internal/ctxio"
	"github.com/imago-ima/imago/pcr"
)

// Load reads the PCR values that src names (see the package comment); "-"
// reads stdin (an error when stdin is nil). Errors name the file, and for a
// malformed dump wrap a *pcr.SourceError with the line. A FIFO is waited on
// (bash's <(tpm2_pcrread)), and every read ends, when ctx does. Every
// error starts with the source or file it is about (the caller adds the
// flag, --pcrs); a parse error keeps package pcr's words, named once.
func Load(ctx context.Context, src string, stdin io.Reader) (pcr.Set, error) {
	var bank pcr.Bank
	path := src
	if alg, rest, ok := strings.Cut(src, ","); ok {
		b, err := pcr.ParseBank(alg)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		if !b.Known() {
			return nil, fmt.Errorf("%s: bank %s has no known digest size", src, b)
		}
		bank, path = b, rest
	}
	if path == "" {
		return nil, fmt.Errorf("%s: no file named", src)
	}
	var (
		set pcr.Set
		err error
	)
	if path == "-" {
		if stdin == nil {
			return nil, fmt.Errorf("%s: no standard input", src)
		}
		set, err = parse(bank, ctxio.NewReader(ctx, stdin), "<stdin>")
	} else if fi, serr := os.Stat(path); serr != nil {
		return nil, ctxio.Named(path, serr)
	} else if fi.IsDir() {
		set, err = loadSysfs(ctx, path, bank)
	} else {
		var f *ctxio.File
		if f, err = ctxio.Open(ctx, path); err != nil {
			return nil, ctxio.Named(path, err)
		}
		set, err = parse(bank, f, path)
		f.Close()
	}
	if err != nil {
		return nil, err
	}
	if bank != 0 {
		if len(set[bank]) == 0 {
			return nil, fmt.Errorf("%s: no %s PCR in it", path, bank)
		}
		set = pcr.Set{bank: set[bank]}
	}
	return set, nil
}

func parse(bank pcr.Bank, r io.Reader, name string) (pcr.Set, error) {
	data, err := io.ReadAll(io.LimitReader(r, pcr.MaxSourceSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > pcr.MaxSourceSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, pcr.MaxSourceSize)
	}
	s, err := pcr.ParseSource(bank, data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// maxSysfsValue bounds one sysfs pcr-<alg>/<n> file: 128 hex digits and a
// newline.
const maxSysfsValue = 2*64 + 2

// loadSysfs reads a TPM sysfs folder. With bank set, only that bank.
func loadSysfs(ctx context.Context, dir string, bank pcr.Bank) (pcr.Set, error) {
	out := make(pcr.Set)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, ctxio.Named(dir, err)
	}
	for _, e := range ents {
		alg, ok := strings.CutPrefix(e.Name(), "pcr-")
		if !ok || !e.IsDir() {
			continue
		}
		b, err := pcr.ParseBank(alg)
		if err != nil || !b.Known() || (bank != 0 && b != bank) {
			continue
		}
		if err := loadSysfsBank(ctx, filepath.Join(dir, e.Name()), b, out); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		// TPM 1.2: one "pcrs" file in the evmctl form, sha1 only.
		for _, p := range []string{filepath.Join(dir, "pcrs"), filepath.Join(dir, "device", "pcrs")} {
			f, err := ctxio.Open(ctx, p)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, ctxio.Named(p, err)
			}
			s, err := parse(pcr.SHA1, f, p)
			f.Close()
			return s, err
		}
		return nil, fmt.Errorf("%s: no pcr-<alg> folder and no TPM 1.2 pcrs file", dir)
	}
	return out, nil
}

func loadSysfsBank(ctx context.Context, dir string, b pcr.Bank, out pcr.Set) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return ctxio.Named(dir, err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	for _, e := range ents {
		i, err := strconv.Atoi(e.Name())
		if err != nil || i < 0 || i > pcr.MaxIndex {
			continue
		}
		p := filepath.Join(dir, e.Name())
		f, err := ctxio.Open(ctx, p)
		if err != nil {
			return ctxio.Named(p, err)
		}
		buf := make([]byte, maxSysfsValue+1)
		n, err := io.ReadFull(f, buf)
		f.Close()
		if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
			return fmt.Errorf("%s: %w", p, err)
		}
		if n > maxSysfsValue {
			return fmt.Errorf("%s: longer than %d bytes", p, maxSysfsValue)
		}
		line := fmt.Sprintf("PCR-%02d: %s", i, strings.TrimSpace(string(buf[:n])))
		s, err := pcr.ParseEvmctl(b, []byte(line))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		v, _ := s.Get(b, i)
		out.Put(b, i, v)
	}
	return nil
}
