package eventlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/imago-ima/imago/pcr"
)

// Format is the layout of a TCG event log.
type Format uint8

const (
	// FormatUnknown: nothing was read yet, or the log is empty.
	FormatUnknown Format = iota
	// FormatSHA1 is the TPM 1.2 / legacy layout: TCG_PCR_EVENT records with
	// one SHA-1 digest each (ima-spec.md §11; TCG PC Client PFP §10.2.1).
	FormatSHA1
	// FormatCryptoAgile is the TPM 2.0 layout: a TCG_PCR_EVENT carrying the
	// Spec ID event, then TCG_PCR_EVENT2 records with one digest per bank
	// (ima-spec.md §11; TCG PC Client PFP §10.2.2).
	FormatCryptoAgile
)

// String returns "sha1", "crypto-agile" or "unknown".
func (f Format) String() string {
	switch f {
	case FormatSHA1:
		return "sha1"
	case FormatCryptoAgile:
		return "crypto-agile"
	}
	return "unknown"
}

// SpecIDSignature is the signature that opens the TCG_EfiSpecIDEvent of a
// crypto-agile log (TCG PC Client PFP §10.4.5.1).
const SpecIDSignature = "Spec ID Event03\x00"

// Algorithm is one row of the Spec ID event's algorithm table
// (TCG_EfiSpecIdEventAlgorithmSize): a TPM_ALG_ID and the digest size every
// TCG_PCR_EVENT2 of the log uses for it.
type Algorithm struct {
	Bank pcr.Bank
	Size uint16
}

// SpecID is the TCG_EfiSpecIDEvent, the data of a crypto-agile log's first
// record (TCG PC Client PFP §10.4.5.1; ima-spec.md §11).
type SpecID struct {
	PlatformClass    uint32
	SpecVersionMinor uint8
	SpecVersionMajor uint8
	SpecErrata       uint8
	// UintnSize is 1 for a 32-bit UINTN, 2 for 64-bit.
	UintnSize uint8
	// Algorithms lists every bank the log carries, in table order. It may name
	// algorithms imago cannot compute (pcr.Bank.Known false); their digests are
	// parsed and kept, and Replay skips them.
	Algorithms []Algorithm
	VendorInfo []byte
	// VendorInfoOutside is the number of vendorInfo bytes that lay after the
	// record's eventSize (a malformed Spec ID event the Reader accepts, as
	// tpm2-tools does); 0 for a well-formed event.
	VendorInfoOutside int
}

// Size returns the digest size the table gives for bank b.
func (s *SpecID) Size(b pcr.Bank) (int, bool) {
	for _, a := range s.Algorithms {
		if a.Bank == b {
			return int(a.Size), true
		}
	}
	return 0, false
}

// Banks returns the banks of the table, in table order.
func (s *SpecID) Banks() []pcr.Bank {
	out := make([]pcr.Bank, len(s.Algorithms))
	for i, a := range s.Algorithms {
		out[i] = a.Bank
	}
	return out
}

// specIDFixed is the size of the TCG_EfiSpecIDEvent before the algorithm
// table: signature, platformClass, 4 version/size bytes, numberOfAlgorithms.
const specIDFixed = 16 + 4 + 4 + 4

// IsSpecID reports whether data begins with the crypto-agile Spec ID
// signature "Spec ID Event03\0".
func IsSpecID(data []byte) bool {
	return bytes.HasPrefix(data, []byte(SpecIDSignature))
}

// ParseSpecID parses a TCG_EfiSpecIDEvent (the data of a crypto-agile log's
// first record). The table may hold at most MaxDigests algorithms, each known
// algorithm must have its standard size, unknown ones 1..MaxDigestSize bytes,
// and no algorithm may repeat. The event must end right after vendorInfo.
// (The Reader is more lenient: see Reader.)
func ParseSpecID(data []byte) (*SpecID, error) {
	s, missing, err := parseSpecID(data)
	if err != nil {
		return nil, err
	}
	if missing > 0 {
		return nil, fmt.Errorf("vendorInfo cut short by %d bytes", missing)
	}
	return s, nil
}

// parseSpecID parses data, allowing vendorInfo to run past the end of data:
// it then returns how many vendorInfo bytes are missing (the Reader takes
// them from the bytes after the record, as tpm2-tools does for its
// specid-vendordata.bin fixture, whose eventSize excludes vendorInfo).
func parseSpecID(data []byte) (*SpecID, int, error) {
	if !IsSpecID(data) {
		return nil, 0, errors.New("signature is not \"Spec ID Event03\"")
	}
	if len(data) < specIDFixed {
		return nil, 0, fmt.Errorf("%d bytes, want at least %d", len(data), specIDFixed)
	}
	le := binary.LittleEndian
	s := &SpecID{
		PlatformClass:    le.Uint32(data[16:]),
		SpecVersionMinor: data[20],
		SpecVersionMajor: data[21],
		SpecErrata:       data[22],
		UintnSize:        data[23],
	}
	n := le.Uint32(data[24:])
	if n == 0 {
		return nil, 0, errors.New("numberOfAlgorithms is 0")
	}
	if n > MaxDigests {
		return nil, 0, fmt.Errorf("numberOfAlgorithms %d exceeds limit %d", n, MaxDigests)
	}
	p := data[specIDFixed:]
	if len(p) < int(n)*4+1 {
		return nil, 0, fmt.Errorf("algorithm table of %d entries cut short", n)
	}
	s.Algorithms = make([]Algorithm, n)
	for i := range s.Algorithms {
		a := Algorithm{Bank: pcr.Bank(le.Uint16(p)), Size: le.Uint16(p[2:])}
		p = p[4:]
		if a.Bank.Known() && int(a.Size) != a.Bank.Size() {
			return nil, 0, fmt.Errorf("algorithm %s has digest size %d, want %d", a.Bank, a.Size, a.Bank.Size())
		}
		if a.Size == 0 || a.Size > MaxDigestSize {
			return nil, 0, fmt.Errorf("algorithm %s has digest size %d (want 1..%d)", a.Bank, a.Size, MaxDigestSize)
		}
		for _, b := range s.Algorithms[:i] {
			if b.Bank == a.Bank {
				return nil, 0, fmt.Errorf("algorithm %s listed twice", a.Bank)
			}
		}
		s.Algorithms[i] = a
	}
	vn := int(p[0])
	p = p[1:]
	if len(p) > vn {
		return nil, 0, fmt.Errorf("%d bytes after vendorInfo", len(p)-vn)
	}
	s.VendorInfo = bytes.Clone(p)
	return s, vn - len(p), nil
}
