package imahost

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/imago-ima/imago/attester"
	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
)

// PCR is the kernel's IMA PCR.
const PCR = 10

// Extender extends one PCR of every bank, as tpm.TPM.Extend does.
type Extender func(index int, digests map[pcr.Bank][]byte) error

// Host is one host's list and TPM.
type Host struct {
	banks  []pcr.Bank
	extend Extender

	mu      sync.Mutex
	data    []byte
	offsets []int // offsets[i] is the byte offset of entry i
	digests map[string][]string
}

// New makes a host whose TPM has banks, extended through extend.
func New(banks []pcr.Bank, extend Extender) *Host {
	return &Host{banks: banks, extend: extend, digests: map[string][]string{}}
}

// Boot starts a new list (a reboot): its first entry is boot_aggregate,
// the SHA-256 aggregate of boot (PCR 0-9, as the TPM has them).
func (h *Host) Boot(boot pcr.Set) error {
	h.mu.Lock()
	h.data, h.offsets = nil, nil
	h.mu.Unlock()
	agg, ok := bootagg.Aggregate(pcr.SHA256, boot)
	if !ok {
		agg = make([]byte, 32)
	}
	_, err := h.add("boot_aggregate", agg)
	return err
}

// Measure appends an entry for a file of the given content and extends it.
func (h *Host) Measure(path string, content []byte) (*ima.Entry, error) {
	sum := sha256.Sum256(content)
	return h.add(path, sum[:])
}

func (h *Host) add(path string, fileDigest []byte) (*ima.Entry, error) {
	e, err := ima.NewEntry("ima-ng", nil, PCR, ima.DigestNG(ima.HashSHA256, fileDigest), ima.NameNG(path))
	if err != nil {
		return nil, err
	}
	d := make(map[pcr.Bank][]byte, len(h.banks))
	for _, b := range h.banks {
		d[b] = e.TemplateDigest(b)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	// The list first, then the TPM: the kernel's order.
	off := len(h.data)
	if h.data, err = ima.AppendBinary(h.data, e, nil); err != nil {
		return nil, err
	}
	h.offsets = append(h.offsets, off)
	hx := hex.EncodeToString(fileDigest)
	if !slices.Contains(h.digests[path], hx) {
		h.digests[path] = append(h.digests[path], hx)
	}
	if err := h.extend(PCR, d); err != nil {
		return nil, fmt.Errorf("imahost: extend: %w", err)
	}
	return e, nil
}

// Len returns the number of entries.
func (h *Host) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.offsets)
}

// Bytes returns the whole binary list.
func (h *Host) Bytes() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.data)
}

// WriteFile writes the binary list to path (atomically).
func (h *Host) WriteFile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, h.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadFrom implements attester.List.
func (h *Host) ReadFrom(index uint64) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if index > uint64(len(h.offsets)) {
		return nil, fmt.Errorf("%w: %d entries, asked from %d", attester.ErrShortList, len(h.offsets), index)
	}
	if index == uint64(len(h.offsets)) {
		return nil, nil
	}
	return slices.Clone(h.data[h.offsets[index]:]), nil
}

// PCRs implements attester.List.
func (h *Host) PCRs() ([]int, error) { return []int{PCR}, nil }

// Policy returns a Keylime runtime policy (v1) allowing every file
// measured so far, boot_aggregate included, plus extra path → SHA-256 hex
// digests.
func (h *Host) Policy(extra map[string]string) []byte {
	h.mu.Lock()
	d := make(map[string][]string, len(h.digests)+len(extra))
	for k, v := range h.digests {
		d[k] = slices.Clone(v)
	}
	h.mu.Unlock()
	for k, v := range extra {
		d[k] = append(d[k], v)
	}
	p := map[string]any{
		"meta":              map[string]any{"version": 1, "generator": 0},
		"release":           0,
		"digests":           d,
		"excludes":          []string{},
		"keyrings":          map[string]any{},
		"ima":               map[string]any{"ignored_keyrings": []string{}, "log_hash_alg": "sha1", "dm_policy": nil},
		"ima-buf":           map[string]any{},
		"verification-keys": "",
	}
	b, _ := json.Marshal(p)
	return b
}

// Soft is the TPM side a host needs of an emulated TPM
// (internal/softtpm.TPM).
type Soft interface {
	Banks() ([]pcr.Bank, error)
	PCRs() pcr.Set
	Extend(index int, digests map[pcr.Bank][]byte)
}

// NewBooted makes a host on an emulated TPM and boots it: its list starts
// with the boot aggregate of the TPM's PCRs.
func NewBooted(t Soft) (*Host, error) {
	banks, err := t.Banks()
	if err != nil {
		return nil, err
	}
	h := New(banks, func(i int, d map[pcr.Bank][]byte) error { t.Extend(i, d); return nil })
	if err := h.Boot(t.PCRs()); err != nil {
		return nil, err
	}
	return h, nil
}
