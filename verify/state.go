package verify

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/pcr"
)

// State is what a verifier keeps about one list between rounds: where the
// next round starts, the running PCR values, the keys learned from the
// list, whether the boot aggregate was judged, and how far the last quote
// lagged behind the list. It is small and JSON-serialisable; a caller
// stores it with the round's verdict in one transaction. The zero State
// starts at the first entry.
type State struct {
	// Next is the index of the first entry not yet verified.
	Next int `json:"next"`
	// ListBank is the bank of the listed template digests ("sha1" for the
	// classic list), fixed by the first entry.
	ListBank string `json:"list_bank,omitempty"`
	// PCRs are the running values, per bank and PCR, after entry Next-1.
	PCRs []PCRValue `json:"pcrs,omitempty"`
	// Keys are the keys learned from ima-buf keyring entries so far.
	Keys []LearnedKey `json:"keys,omitempty"`
	// BootAggregate is the boot aggregate's verdict once its entry was
	// verified: "pass", "fail", "unchecked" (nothing to judge it by), or
	// "adopted" (a TPM-bypass list held by a late TPM: VerdictAdopted).
	BootAggregate string `json:"boot_aggregate,omitempty"`
	// Late is set when the list started with boot_aggregate_late (the
	// kernel's late-TPM start).
	Late bool `json:"late,omitempty"`
	// Lag is how many entries the last round read past the quote's match;
	// the next quote must cover at least them (IDQuoteProgress).
	Lag int `json:"lag,omitempty"`
	// Failed counts the entries that failed so far (and list-level
	// failures such as quote progress); FirstFailed is the first failing
	// entry, meaningful when Failed is not 0. A failure stays in the
	// State: later rounds report it (Report.Pass) until the caller starts
	// over with a zero State, as Keylime resets its state on any failure.
	Failed      int `json:"failed,omitempty"`
	FirstFailed int `json:"first_failed,omitempty"`
}

// PCRValue is one running PCR value.
type PCRValue struct {
	Bank  string `json:"bank"`
	PCR   int    `json:"pcr"`
	Value string `json:"value"` // hex
	// Variant is "padded-sha1" where the bank is extended with the SHA-1
	// template digest zero-padded (a bank the kernel cannot hash).
	Variant string `json:"variant,omitempty"`
}

// LearnedKey is a key loaded onto a keyring, learned from an ima-buf
// entry.
type LearnedKey struct {
	Keyring string `json:"keyring"`
	Entry   int    `json:"entry"`
	KeyID   uint32 `json:"keyid"`
	// Data is the ima-buf buffer (a DER certificate or key).
	Data []byte `json:"data"`
}

// MaxLearnedKeys bounds the keys a State holds.
const MaxLearnedKeys = 1024

// Marshal returns the State as JSON.
func (s *State) Marshal() ([]byte, error) { return json.Marshal(s) }

// ParseState decodes a State written by Marshal and checks it.
func ParseState(b []byte) (*State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("verify: state: %w", err)
	}
	if _, _, err := s.decode(); err != nil {
		return nil, err
	}
	return &s, nil
}

// laneStart is a bank's starting point for a round.
type laneStart struct {
	bank    pcr.Bank
	padded  bool
	values  map[int][]byte
	variant string
}

// decode checks the State and returns its running values by bank (in
// State order) and its learned keys parsed.
func (s *State) decode() ([]laneStart, []learned, error) {
	if s.Next < 0 || s.Lag < 0 || s.Failed < 0 {
		return nil, nil, errors.New("verify: state: negative counter")
	}
	if len(s.Keys) > MaxLearnedKeys {
		return nil, nil, fmt.Errorf("verify: state: %d learned keys, more than %d", len(s.Keys), MaxLearnedKeys)
	}
	var lanes []laneStart
	for _, v := range s.PCRs {
		b, err := pcr.ParseBank(v.Bank)
		if err != nil || !b.Known() {
			return nil, nil, fmt.Errorf("verify: state: bank %q", v.Bank)
		}
		if v.PCR < 0 || v.PCR > pcr.MaxIndex {
			return nil, nil, fmt.Errorf("verify: state: PCR %d", v.PCR)
		}
		val, err := hex.DecodeString(v.Value)
		if err != nil || len(val) != b.Size() {
			return nil, nil, fmt.Errorf("verify: state: %s PCR %d value %q", v.Bank, v.PCR, v.Value)
		}
		i := slices.IndexFunc(lanes, func(l laneStart) bool { return l.bank == b })
		if i < 0 {
			lanes = append(lanes, laneStart{bank: b, values: map[int][]byte{}, variant: v.Variant, padded: v.Variant == variantPadded})
			i = len(lanes) - 1
		}
		lanes[i].values[v.PCR] = val
	}
	var keys []learned
	for i, k := range s.Keys {
		key, err := digsig.ParseKey(k.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("verify: state: keys[%d]: %w", i, err)
		}
		keys = append(keys, learned{entry: k.Entry, keyring: k.Keyring, key: key, data: k.Data})
	}
	return lanes, keys, nil
}

const variantPadded = "padded-sha1"

// learned is a key learned from the list, usable by entries after Entry.
type learned struct {
	entry   int
	keyring string
	key     digsig.Key
	data    []byte
}
