// Package emuhost makes emulated attested hosts for tests and load
// generators: a software TPM (internal/softtpm: real TPMS_ATTEST quotes
// signed by a software AK, an EK certificate from a test CA, the software
// side of ActivateCredential) under the kernel's IMA list
// (internal/imahost), attested by the real attester code (package
// attester) through the verifier's real API. Every host measures files
// from one fixed set, which one runtime policy (Policy) allows.
package emuhost

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/imago-ima/imago/attester"
	"github.com/imago-ima/imago/internal/imahost"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/verifier/client"
)

// Files is the size of the set of files hosts measure.
const Files = 1000

// FileName is the path of file i of the set.
func FileName(i int) string { return fmt.Sprintf("/usr/lib/imago-bench/f%04d", i%Files) }

// FileContent is the content of file i of the set.
func FileContent(i int) []byte { return []byte(fmt.Sprintf("content of file %d", i%Files)) }

// Host is one emulated host.
type Host struct {
	Name string
	TPM  *softtpm.TPM
	IMA  *imahost.Host
	next int // next file of the set to measure
}

// New makes a booted host whose EK certificate ca issues.
func New(ca *softtpm.CA, name string) (*Host, error) {
	tp, err := softtpm.New(ca, name)
	if err != nil {
		return nil, err
	}
	h := imahost.New([]pcr.Bank{pcr.SHA1, pcr.SHA256}, func(i int, d map[pcr.Bank][]byte) error { tp.Extend(i, d); return nil })
	if err := h.Boot(tp.PCRs()); err != nil {
		return nil, err
	}
	return &Host{Name: name, TPM: tp, IMA: h}, nil
}

// Measure measures the next k files of the set.
func (h *Host) Measure(k int) error {
	for range k {
		if _, err := h.IMA.Measure(FileName(h.next), FileContent(h.next)); err != nil {
			return err
		}
		h.next++
	}
	return nil
}

// Attester returns the host's attester, talking to cl.
func (h *Host) Attester(cl *client.Client) *attester.Attester {
	return &attester.Attester{TPM: h.TPM, Client: cl, Node: h.Name, List: h.IMA}
}

// Policy returns the runtime policy that allows every file of the set and
// the emulated hosts' boot aggregate (every emulated TPM boots with the
// same PCRs).
func Policy(ca *softtpm.CA) ([]byte, error) {
	h, err := New(ca, "policy")
	if err != nil {
		return nil, err
	}
	extra := make(map[string]string, Files)
	for i := range Files {
		sum := sha256.Sum256(FileContent(i))
		extra[FileName(i)] = hex.EncodeToString(sum[:])
	}
	return h.IMA.Policy(extra), nil
}
