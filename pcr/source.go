package pcr

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
)

// Text PCR dumps: the forms people have at hand when they check a
// measurement list against a TPM (ima-spec.md §4.4, §13.3).
//
//   - evmctl's --pcrs file and the TPM 1.2 sysfs "pcrs" file, one bank per
//     file: "PCR-NN: HEX", where HEX may have a space between bytes and any
//     case ("PCR-10: 3A 3F ..." in sysfs, "PCR-10: 3A3F..." from evmctl's
//     own tests). tsspcrread's "N: hex" lines (ima-evm-utils
//     tests/sample-tpm-2.0-pcrs-8-9, after a "pcrread: ..." header) are
//     read the same way.
//   - tpm2_pcrread's YAML (tpm2-tools 4.x/5.x): a "<bank>:" line, then
//     "<index> : 0x<HEX>" lines indented below it, several banks per file,
//     optionally under a "pcrs:" key as tpm2_quote and tpm2_eventlog print.
//     tpm2-tools 3.x wrote "<bank> :" and values without "0x"; both parse.
//   - imago's JSON, see ParseJSON.

// MaxSourceSize bounds a text PCR dump. A full dump of five banks of 24
// PCRs in the widest form is under 20 KiB.
const MaxSourceSize = 1 << 20

// maxLineLen bounds one line of a text dump: "PCR-NN: " and 64 bytes as
// "XX " is 200 bytes; leave room for comments and odd spacing.
const maxLineLen = 4096

// SourceError is a malformed line in a text PCR dump.
type SourceError struct {
	Format string // "evmctl" or "tpm2_pcrread"
	Line   int    // 1-based; 0 for the whole input
	Err    error
}

func (e *SourceError) Error() string {
	s := "pcr: "
	if e.Format != "" {
		s += e.Format + ": "
	}
	if e.Line != 0 {
		s += fmt.Sprintf("line %d: ", e.Line)
	}
	return s + e.Err.Error()
}

func (e *SourceError) Unwrap() error { return e.Err }

// ErrNoPCRs is wrapped when a dump holds no PCR value at all.
var ErrNoPCRs = errors.New("no PCR value found")

// Format is the kind of a PCR dump, as DetectFormat sees it.
type Format int

const (
	FormatUnknown  Format = iota
	FormatEvmctl          // "PCR-NN: HEX" or tsspcrread "N: hex"; one bank, named by the caller
	FormatTPM2YAML        // tpm2_pcrread YAML
	FormatJSON            // imago's JSON
)

func (f Format) String() string {
	switch f {
	case FormatEvmctl:
		return "evmctl"
	case FormatTPM2YAML:
		return "tpm2_pcrread"
	case FormatJSON:
		return "json"
	}
	return "unknown"
}

// DetectFormat guesses the form of a PCR dump from its first meaningful
// line: "{" is JSON, "PCR-" or a bare "N: hex" line (or tsspcrread's
// "pcrread:" header) is evmctl's form, a bank name followed by ":" (or
// "pcrs:") is tpm2_pcrread YAML.
func DetectFormat(data []byte) Format {
	first := true
	for line := range lines(data) {
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		if first {
			first = false
			if t[0] == '{' {
				return FormatJSON
			}
			if bytes.HasPrefix(t, []byte("PCR-")) || bytes.HasPrefix(t, []byte("pcrread:")) {
				return FormatEvmctl
			}
			if key, val, ok := bytes.Cut(t, []byte(":")); ok && len(bytes.TrimSpace(val)) > 0 {
				if _, err := parseIndex(key); err == nil {
					return FormatEvmctl
				}
			}
		}
		// tpm2_pcrread YAML: a "<bank>:" or "pcrs:" line, maybe after
		// other tpm2_quote keys.
		if key, val, ok := bytes.Cut(t, []byte(":")); ok && len(bytes.TrimSpace(val)) == 0 {
			key = bytes.TrimSpace(key)
			if _, err := ParseBank(string(key)); err == nil || string(key) == "pcrs" {
				return FormatTPM2YAML
			}
		}
	}
	return FormatUnknown
}

// ParseEvmctl parses one bank's PCR values in evmctl's --pcrs form
// ("PCR-NN: HEX"), the TPM 1.2 sysfs "pcrs" form (the same, with a space
// between bytes) or tsspcrread's "N: hex" form. Blank lines, "#" comments and
// a "pcrread:" header line are skipped; any other line is an error. Every
// value must have the bank's digest size (for a known bank).
func ParseEvmctl(b Bank, data []byte) (Set, error) {
	const format = "evmctl"
	if len(data) > MaxSourceSize {
		return nil, &SourceError{format, 0, fmt.Errorf("input is %d bytes, limit %d", len(data), MaxSourceSize)}
	}
	out := make(Set)
	n := 0
	for line := range lines(data) {
		n++
		if len(line) > maxLineLen {
			return nil, &SourceError{format, n, fmt.Errorf("line longer than %d bytes", maxLineLen)}
		}
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' || bytes.HasPrefix(t, []byte("pcrread:")) {
			continue
		}
		t = bytes.TrimPrefix(t, []byte("PCR-"))
		key, val, ok := bytes.Cut(t, []byte(":"))
		if !ok {
			return nil, &SourceError{format, n, fmt.Errorf("want \"PCR-NN: HEX\", got %q", clip(line))}
		}
		i, err := parseIndex(key)
		if err != nil {
			return nil, &SourceError{format, n, err}
		}
		v, err := parseHex(val, true)
		if err != nil {
			return nil, &SourceError{format, n, fmt.Errorf("PCR %d: %w", i, err)}
		}
		if err := checkSize(b, v); err != nil {
			return nil, &SourceError{format, n, fmt.Errorf("PCR %d: %w", i, err)}
		}
		if _, dup := out.Get(b, i); dup {
			return nil, &SourceError{format, n, fmt.Errorf("PCR %d given twice", i)}
		}
		out.Put(b, i, v)
	}
	if len(out) == 0 {
		return nil, &SourceError{format, 0, ErrNoPCRs}
	}
	return out, nil
}

// ParseTPM2YAML parses tpm2_pcrread's YAML output (see the comment at the
// top of this file). Lines of other keys (tpm2_quote's "quoted:",
// "signature:", "selected-pcrs:" lists and so on) are skipped; a value line
// with no bank above it, a bad index or bad hex is an error. A bank with no
// value ("  sha1:" alone, as tpm2_pcrread prints for an empty selection) is
// left out.
func ParseTPM2YAML(data []byte) (Set, error) {
	const format = "tpm2_pcrread"
	if len(data) > MaxSourceSize {
		return nil, &SourceError{format, 0, fmt.Errorf("input is %d bytes, limit %d", len(data), MaxSourceSize)}
	}
	out := make(Set)
	var (
		bank       Bank
		haveBank   bool
		bankIndent int
		n          int
	)
	for line := range lines(data) {
		n++
		if len(line) > maxLineLen {
			return nil, &SourceError{format, n, fmt.Errorf("line longer than %d bytes", maxLineLen)}
		}
		t := bytes.TrimSpace(line)
		if len(t) == 0 || t[0] == '#' || t[0] == '-' || bytes.Equal(t, []byte("---")) {
			continue
		}
		indent := len(line) - len(bytes.TrimLeft(line, " \t"))
		key, val, ok := bytes.Cut(t, []byte(":"))
		if !ok {
			return nil, &SourceError{format, n, fmt.Errorf("want \"key: value\", got %q", clip(line))}
		}
		key = bytes.TrimSpace(key)
		val = bytes.TrimSpace(val)
		if i, err := parseIndex(key); err == nil && len(val) > 0 && (haveBank && indent > bankIndent) {
			v, err := parseHex(val, false)
			if err != nil {
				return nil, &SourceError{format, n, fmt.Errorf("%s PCR %d: %w", bank, i, err)}
			}
			if err := checkSize(bank, v); err != nil {
				return nil, &SourceError{format, n, fmt.Errorf("%s PCR %d: %w", bank, i, err)}
			}
			if _, dup := out.Get(bank, i); dup {
				return nil, &SourceError{format, n, fmt.Errorf("%s PCR %d given twice", bank, i)}
			}
			out.Put(bank, i, v)
			continue
		} else if err == nil && len(val) > 0 {
			return nil, &SourceError{format, n, fmt.Errorf("PCR %d has no bank line above it", i)}
		}
		// Any other key ends the current bank; a bank name with no value
		// starts one.
		haveBank = false
		if len(val) == 0 {
			if b, err := ParseBank(string(key)); err == nil {
				bank, haveBank, bankIndent = b, true, indent
			}
		}
	}
	if len(out) == 0 {
		return nil, &SourceError{format, 0, ErrNoPCRs}
	}
	return out, nil
}

// ParseSource parses a PCR dump in any form DetectFormat knows. bank names
// the bank for evmctl's one-bank form and is ignored otherwise; for the
// evmctl form with bank 0 it fails, asking for "ALG,FILE".
func ParseSource(bank Bank, data []byte) (Set, error) {
	switch DetectFormat(data) {
	case FormatJSON:
		return ParseJSON(data)
	case FormatTPM2YAML:
		return ParseTPM2YAML(data)
	case FormatEvmctl:
		if bank == 0 {
			return nil, &SourceError{"evmctl", 0, errors.New(`one-bank "PCR-NN: HEX" dump: name its bank as ALG,FILE (e.g. sha256,pcrs.txt)`)}
		}
		return ParseEvmctl(bank, data)
	}
	return nil, &SourceError{"", 0, errors.New("unknown PCR dump format (want evmctl's \"PCR-NN: HEX\" lines, tpm2_pcrread YAML, or JSON {\"sha256\": {\"10\": \"<hex>\"}})")}
}

// lines yields data split at '\n', without the '\n' and a trailing '\r'.
func lines(data []byte) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(data) > 0 {
			line, rest, _ := bytes.Cut(data, []byte("\n"))
			data = rest
			line = bytes.TrimSuffix(line, []byte("\r"))
			if !yield(line) {
				return
			}
		}
	}
}

func parseIndex(s []byte) (int, error) {
	s = bytes.TrimSpace(s)
	if len(s) == 0 || len(s) > 3 {
		return 0, fmt.Errorf("bad PCR index %q", clip(s))
	}
	i := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad PCR index %q", clip(s))
		}
		i = i*10 + int(c-'0')
	}
	if i > MaxIndex {
		return 0, fmt.Errorf("PCR index %d exceeds %d", i, MaxIndex)
	}
	return i, nil
}

// parseHex decodes a PCR value: optional "0x", hex digits in any case, and
// (when spaced) single spaces or tabs between bytes.
func parseHex(s []byte, spaced bool) ([]byte, error) {
	s = bytes.TrimSpace(s)
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	var buf [2 * 64]byte
	n := 0
	for _, c := range s {
		if spaced && (c == ' ' || c == '\t') {
			if n%2 != 0 {
				return nil, errors.New("space inside a hex byte")
			}
			continue
		}
		if n == len(buf) {
			return nil, fmt.Errorf("value longer than %d bytes", len(buf)/2)
		}
		buf[n] = c
		n++
	}
	if n == 0 {
		return nil, errors.New("empty value")
	}
	return decodeHex(buf[:n])
}

// decodeHex is hex.Decode with this package's words (no "encoding/hex: "
// inside a pcr error).
func decodeHex(s []byte) ([]byte, error) {
	v := make([]byte, len(s)/2)
	if _, err := hex.Decode(v, s); err != nil {
		var ib hex.InvalidByteError
		if errors.As(err, &ib) {
			return nil, fmt.Errorf("bad hex: %q is not a hex digit", rune(ib))
		}
	}
	if len(s)%2 != 0 {
		return nil, errors.New("bad hex: odd number of hex digits")
	}
	return v, nil
}

func checkSize(b Bank, v []byte) error {
	if b.Known() && len(v) != b.Size() {
		return fmt.Errorf("%d bytes, want %d for %s", len(v), b.Size(), b)
	}
	return nil
}

func clip(s []byte) string {
	if len(s) > 40 {
		return string(s[:40]) + "..."
	}
	return string(s)
}
