package quote

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/pcr"
)

// Limits of a PCR selection.
const (
	// MaxBanks bounds the banks of one selection (HASH_COUNT on real TPMs
	// is at most 5).
	MaxBanks = 16
	// NumPCRs is the number of PCRs a PC Client TPM has per bank; quoted
	// indexes must be below it.
	NumPCRs = 24
	// sizeofSelect is the PCR bitmap size for NumPCRs.
	sizeofSelect = NumPCRs / 8
)

// BankPCRs selects PCRs of one bank.
type BankPCRs struct {
	Bank pcr.Bank `json:"-"`
	// PCRs are ascending and distinct.
	PCRs []int `json:"pcrs"`
}

// Selection is a TPML_PCR_SELECTION (TPM 2.0 Part 2 §10.9.7): PCRs by
// bank, in the order the TPM hashes them. Its JSON form is a list of
// {"bank": "sha256", "pcrs": [0, 1, 10]}.
type Selection []BankPCRs

type bankPCRsJSON struct {
	Bank string `json:"bank"`
	PCRs []int  `json:"pcrs"`
}

// MarshalJSON writes the list form.
func (b BankPCRs) MarshalJSON() ([]byte, error) {
	return json.Marshal(bankPCRsJSON{b.Bank.String(), b.PCRs})
}

// UnmarshalJSON reads the list form.
func (b *BankPCRs) UnmarshalJSON(data []byte) error {
	var j bankPCRsJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	bank, err := pcr.ParseBank(j.Bank)
	if err != nil {
		return err
	}
	*b = BankPCRs{Bank: bank, PCRs: j.PCRs}
	return nil
}

// Check reports a selection that is empty, has more than MaxBanks banks,
// a bank twice, a bank with no PCR, or PCRs that are not ascending,
// distinct and below NumPCRs.
func (s Selection) Check() error {
	if len(s) == 0 {
		return fmt.Errorf("quote: empty PCR selection")
	}
	if len(s) > MaxBanks {
		return fmt.Errorf("quote: PCR selection of %d banks, more than %d", len(s), MaxBanks)
	}
	for i, b := range s {
		for _, o := range s[:i] {
			if o.Bank == b.Bank {
				return fmt.Errorf("quote: PCR selection lists bank %s twice", b.Bank)
			}
		}
		if len(b.PCRs) == 0 {
			return fmt.Errorf("quote: PCR selection of bank %s is empty", b.Bank)
		}
		for j, p := range b.PCRs {
			if p < 0 || p >= NumPCRs {
				return fmt.Errorf("quote: PCR selection of bank %s: PCR %d outside [0, %d)", b.Bank, p, NumPCRs)
			}
			if j > 0 && p <= b.PCRs[j-1] {
				return fmt.Errorf("quote: PCR selection of bank %s: PCRs not ascending and distinct", b.Bank)
			}
		}
	}
	return nil
}

// Equal reports whether two selections select the same PCRs in the same
// order.
func (s Selection) Equal(o Selection) bool {
	return slices.EqualFunc(s, o, func(a, b BankPCRs) bool {
		return a.Bank == b.Bank && slices.Equal(a.PCRs, b.PCRs)
	})
}

// Banks returns the selected banks in selection order.
func (s Selection) Banks() []pcr.Bank {
	out := make([]pcr.Bank, len(s))
	for i, b := range s {
		out[i] = b.Bank
	}
	return out
}

// Has reports whether PCR i of bank b is selected.
func (s Selection) Has(b pcr.Bank, i int) bool {
	for _, bs := range s {
		if bs.Bank == b {
			return slices.Contains(bs.PCRs, i)
		}
	}
	return false
}

// NewSelection selects the same PCRs in each bank. indexes are sorted and
// deduplicated.
func NewSelection(banks []pcr.Bank, indexes []int) Selection {
	idx := slices.Clone(indexes)
	slices.Sort(idx)
	idx = slices.Compact(idx)
	out := make(Selection, len(banks))
	for i, b := range banks {
		out[i] = BankPCRs{Bank: b, PCRs: slices.Clone(idx)}
	}
	return out
}

// TPM returns the selection as go-tpm's TPML_PCR_SELECTION, with
// sizeofSelect 3.
func (s Selection) TPM() tpm2.TPMLPCRSelection {
	var out tpm2.TPMLPCRSelection
	for _, b := range s {
		bits := make([]byte, sizeofSelect)
		for _, p := range b.PCRs {
			bits[p/8] |= 1 << (p % 8)
		}
		out.PCRSelections = append(out.PCRSelections, tpm2.TPMSPCRSelection{Hash: tpm2.TPMIAlgHash(b.Bank), PCRSelect: bits})
	}
	return out
}

// selectionFromTPM converts a decoded TPML_PCR_SELECTION, bounding it.
func selectionFromTPM(l tpm2.TPMLPCRSelection) (Selection, error) {
	if len(l.PCRSelections) > MaxBanks {
		return nil, fmt.Errorf("PCR selection of %d banks, more than %d", len(l.PCRSelections), MaxBanks)
	}
	out := make(Selection, 0, len(l.PCRSelections))
	for _, s := range l.PCRSelections {
		b := BankPCRs{Bank: pcr.Bank(s.Hash)}
		for byteI, bits := range s.PCRSelect {
			for bit := range 8 {
				if bits&(1<<bit) != 0 {
					b.PCRs = append(b.PCRs, byteI*8+bit)
				}
			}
		}
		if len(b.PCRs) == 0 {
			continue // an empty bank selects nothing and adds nothing to the digest
		}
		out = append(out, b)
	}
	if err := out.Check(); err != nil {
		return nil, err
	}
	return out, nil
}
