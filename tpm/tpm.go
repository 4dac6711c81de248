package tpm

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/imago-ima/imago/pcr"
)

// Error kinds of Open. The agent defers and retries on ErrNoTPM, stops
// looking on ErrDisabled, and treats anything else as a failure.
var (
	// ErrNoTPM: nothing is there now (auto found no node, the device node or
	// unix socket is absent, the tcp connection was refused). It may appear
	// later.
	ErrNoTPM = errors.New("tpm: no TPM found")
	// ErrDisabled: the URI is "none".
	ErrDisabled = errors.New("tpm: TPM support is switched off")
	// ErrSimulatorNotBuilt: the URI is "sim" but the binary was built without
	// cgo.
	ErrSimulatorNotBuilt = errors.New("tpm: the TPM simulator is not built in (built without cgo)")
	// ErrSimulatorInUse: the URI is "sim" and this process already has the
	// simulator open (there is one per process).
	ErrSimulatorInUse = errors.New("tpm: the TPM simulator is already open in this process")
)

// Limits.
const (
	// maxPCRs bounds PCR indexes: sizeofSelect is 3 on PC Client TPMs (24
	// PCRs); the field is a byte, but TPM2_PCR_Read accepts at most
	// PCR_SELECT_MAX bytes, which no TPM sets above 4.
	maxSelect = 4
	// maxDigestSize is TPM_MAX_DIGEST_BUFFER for a digest: 64 (SHA-512).
	maxDigestSize = 64
	// maxBanks bounds the banks taken from TPM_CAP_PCRS (HASH_COUNT).
	maxBanks = 16
	// maxRetries bounds resending a command the TPM answered with
	// TPM_RC_RETRY, TPM_RC_YIELDED or TPM_RC_TESTING.
	maxRetries = 5
	// maxReadRestarts bounds restarting a multi-command PCR read whose
	// pcrUpdateCounter changed between commands.
	maxReadRestarts = 16
)

// TPM is an open TPM. Its methods are safe for concurrent use; commands are
// serialised.
type TPM struct {
	mu     sync.Mutex
	name   string
	t      transport.TPMCloser
	closed bool
	// select size and digest sizes learnt from the TPM
	sizeofSelect int
	sizes        map[pcr.Bank]int
	// restarts counts ReadPCRs restarts, for tests.
	restarts int
	// The guard session (StartGuard): guarded is set once one was started;
	// guard is nil while it is lost.
	guard      tpm2.Session
	guardClose func() error
	guarded    bool
}

// Open opens the TPM the URI names (see the package documentation) and checks
// that it answers: it queries the allocated PCR banks, and sends
// TPM2_Startup(CLEAR) first if the TPM reports TPM_RC_INITIALIZE (an emulator
// that was powered on but not started). The error wraps ErrNoTPM,
// ErrDisabled, ErrSimulatorNotBuilt, ErrSimulatorInUse or ErrBadURI for those
// cases.
func Open(uri string) (*TPM, error) {
	tg, err := parseURI(uri)
	if err != nil {
		return nil, err
	}
	name := uri
	var t transport.TPMCloser
	switch tg.kind {
	case kindNone:
		return nil, ErrDisabled
	case kindAuto:
		p, err := findDevice(devDir)
		if err != nil {
			return nil, fmt.Errorf("tpm: open auto: %w", err)
		}
		name = p
		t, err = openDevice(p)
		if err != nil {
			return nil, fmt.Errorf("tpm: open %s (auto): %w", p, err)
		}
	case kindDevice:
		t, err = openDevice(tg.addr)
		if err != nil {
			return nil, fmt.Errorf("tpm: open %s: %w", tg.addr, err)
		}
		name = tg.addr
	case kindTCP, kindUnix:
		network := "tcp"
		if tg.kind == kindUnix {
			network = "unix"
		}
		t = newStreamTPM(network, tg.addr)
	case kindSim:
		t, err = openSim()
		if err != nil {
			return nil, fmt.Errorf("tpm: open sim: %w", err)
		}
	}
	tp := &TPM{name: name, t: t, sizes: make(map[pcr.Bank]int)}
	if err := tp.start(); err != nil {
		t.Close()
		return nil, fmt.Errorf("tpm: open %s: %w", name, err)
	}
	return tp, nil
}

// start checks that the TPM answers TPM2_GetCapability, sending
// TPM2_Startup(CLEAR) first if it is not started (TPM 2.0 Part 3, §9.3).
func (tp *TPM) start() error {
	_, err := tp.banks()
	if !errors.Is(err, tpm2.TPMRCInitialize) {
		return err
	}
	_, err = run(tp.t, tpm2.Startup{StartupType: tpm2.TPMSUClear}.Execute)
	if err != nil && !errors.Is(err, tpm2.TPMRCInitialize) {
		return fmt.Errorf("startup: %w", err)
	}
	_, err = tp.banks()
	return err
}

// Available reports whether the TPM the URI names looks present now, without
// sending it a command: auto finds a tpmrm<N> or tpm<N> character device, a
// device path is a character device, a tcp or unix address accepts a
// connection, sim is built in. It is false for none and for a bad URI. It is
// the cheap poll for a deferred start; Open still decides.
func Available(uri string) bool {
	tg, err := parseURI(uri)
	if err != nil {
		return false
	}
	switch tg.kind {
	case kindAuto:
		_, err := findDevice(devDir)
		return err == nil
	case kindDevice:
		return isCharDevice(tg.addr)
	case kindTCP:
		return reachable("tcp", tg.addr)
	case kindUnix:
		return reachable("unix", tg.addr)
	case kindSim:
		return simBuiltIn
	}
	return false
}

// String returns what was opened: the device path (also for auto), or the URI.
func (tp *TPM) String() string { return tp.name }

// Close releases the TPM. Later calls return nil; other methods then fail
// with os.ErrClosed.
func (tp *TPM) Close() error {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.closed {
		return nil
	}
	tp.closed = true
	tp.closeGuard()
	if err := tp.t.Close(); err != nil {
		return fmt.Errorf("tpm: close %s: %w", tp.name, err)
	}
	return nil
}

// lock takes the command lock, failing if the TPM is closed.
func (tp *TPM) lock() error {
	tp.mu.Lock()
	if tp.closed {
		tp.mu.Unlock()
		return fmt.Errorf("tpm: %s: %w", tp.name, os.ErrClosed)
	}
	return nil
}

// run executes one go-tpm command, resending it while the TPM answers with a
// warning that asks for a retry, and turning a panic in go-tpm's response
// parser into an error.
func run[R any](t transport.TPM, exec func(transport.TPM, ...tpm2.Session) (*R, error), s ...tpm2.Session) (rsp *R, err error) {
	for i := 0; ; i++ {
		rsp, err = safeRun(t, exec, s...)
		if i+1 >= maxRetries || !(errors.Is(err, tpm2.TPMRCRetry) || errors.Is(err, tpm2.TPMRCYielded) || errors.Is(err, tpm2.TPMRCTesting)) {
			return rsp, err
		}
		time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
	}
}

func safeRun[R any](t transport.TPM, exec func(transport.TPM, ...tpm2.Session) (*R, error), s ...tpm2.Session) (rsp *R, err error) {
	defer func() {
		if r := recover(); r != nil {
			rsp, err = nil, fmt.Errorf("tpm: go-tpm panicked on the response: %v", r)
		}
	}()
	return exec(t, s...)
}

// Banks returns the allocated PCR banks, in the order the TPM lists them
// (TPM2_GetCapability(TPM_CAP_PCRS), TPM 2.0 Part 3 §30.2). A bank counts as
// allocated if its PCR selection is not empty. Banks with an algorithm imago
// cannot compute are included (Bank.Known is false for them).
func (tp *TPM) Banks() ([]pcr.Bank, error) {
	if err := tp.lock(); err != nil {
		return nil, err
	}
	defer tp.mu.Unlock()
	b, err := tp.banks()
	if err != nil {
		return nil, fmt.Errorf("tpm: %s: banks: %w", tp.name, err)
	}
	return b, nil
}

func (tp *TPM) banks() ([]pcr.Bank, error) {
	rsp, err := run(tp.t, tpm2.GetCapability{
		Capability:    tpm2.TPMCapPCRs,
		PropertyCount: maxBanks,
	}.Execute)
	if err != nil {
		return nil, err
	}
	sel, err := rsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return nil, err
	}
	if len(sel.PCRSelections) > maxBanks {
		return nil, fmt.Errorf("TPM lists %d PCR banks, more than %d", len(sel.PCRSelections), maxBanks)
	}
	var out []pcr.Bank
	for _, s := range sel.PCRSelections {
		if len(s.PCRSelect) > maxSelect {
			return nil, fmt.Errorf("bank %s: PCR select of %d bytes, more than %d", pcr.Bank(s.Hash), len(s.PCRSelect), maxSelect)
		}
		if len(s.PCRSelect) > tp.sizeofSelect {
			tp.sizeofSelect = len(s.PCRSelect)
		}
		if slices.ContainsFunc(s.PCRSelect, func(b byte) bool { return b != 0 }) {
			out = append(out, pcr.Bank(s.Hash))
		}
	}
	return out, nil
}

// NumPCRs returns the number of PCRs per bank the TPM's selection covers
// (8 × sizeofSelect, 24 on PC Client TPMs).
func (tp *TPM) NumPCRs() int {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return 8 * tp.sizeofSelect
}

// DigestSize returns the digest size of bank b on this TPM: Bank.Size for a
// known bank; for another bank it reads a PCR once to learn it.
func (tp *TPM) DigestSize(b pcr.Bank) (int, error) {
	if b.Known() {
		return b.Size(), nil
	}
	tp.mu.Lock()
	n, ok := tp.sizes[b]
	tp.mu.Unlock()
	if ok {
		return n, nil
	}
	s, err := tp.ReadPCRs([]pcr.Bank{b}, []int{0})
	if err != nil {
		return 0, err
	}
	v, _ := s.Get(b, 0)
	return len(v), nil
}

// ReadPCRs reads the given PCRs of the given banks with TPM2_PCR_Read (TPM
// 2.0 Part 3 §22.4). A TPM returns at most 8 digests per command and may
// return fewer than asked, so it loops until all are read; if the TPM's
// pcrUpdateCounter changes between commands it starts again, so the result is
// one consistent snapshot. For a bank imago does not know, the digest size is
// learnt from the response. A PCR the TPM never returns (an unallocated bank)
// is an error. The snapshot guarantee covers the PCRs whose extends bump the
// counter: not those in TPM_PT_PCR_NO_INCREMENT (PCRs 16 and 21-23 on
// swtpm/libtpms; 20-22 on the reference simulator).
func (tp *TPM) ReadPCRs(banks []pcr.Bank, indexes []int) (pcr.Set, error) {
	if err := tp.lock(); err != nil {
		return nil, err
	}
	defer tp.mu.Unlock()
	if len(banks) == 0 || len(indexes) == 0 {
		return pcr.Set{}, nil
	}
	n := 8 * tp.sizeofSelect
	for _, i := range indexes {
		if i < 0 || i >= n {
			return nil, fmt.Errorf("tpm: %s: read PCR %d: index outside [0, %d)", tp.name, i, n)
		}
	}
	for restart := 0; restart < maxReadRestarts; restart++ {
		set, changed, err := tp.readOnce(banks, indexes)
		if err != nil {
			return nil, fmt.Errorf("tpm: %s: read PCRs: %w", tp.name, err)
		}
		if !changed {
			return set, nil
		}
		tp.restarts++
	}
	return nil, fmt.Errorf("tpm: %s: read PCRs: PCRs kept changing during %d attempts", tp.name, maxReadRestarts)
}

type bankPCR struct {
	bank pcr.Bank
	idx  int
}

// readOnce reads every requested PCR; changed reports that the update
// counter moved between commands.
func (tp *TPM) readOnce(banks []pcr.Bank, indexes []int) (set pcr.Set, changed bool, err error) {
	pending := make(map[bankPCR]bool, len(banks)*len(indexes))
	for _, b := range banks {
		for _, i := range indexes {
			pending[bankPCR{b, i}] = true
		}
	}
	set = make(pcr.Set)
	var counter uint32
	for first := true; len(pending) > 0; first = false {
		var req tpm2.TPMLPCRSelection
		for _, b := range banks {
			s := tpm2.TPMSPCRSelection{Hash: tpm2.TPMIAlgHash(b), PCRSelect: make([]byte, tp.sizeofSelect)}
			any := false
			for _, i := range indexes {
				if pending[bankPCR{b, i}] {
					s.PCRSelect[i/8] |= 1 << (i % 8)
					any = true
				}
			}
			if any {
				req.PCRSelections = append(req.PCRSelections, s)
			}
		}
		rsp, err := run(tp.t, tpm2.PCRRead{PCRSelectionIn: req}.Execute)
		if err != nil {
			return nil, false, err
		}
		if !first && rsp.PCRUpdateCounter != counter {
			return nil, true, nil
		}
		counter = rsp.PCRUpdateCounter
		got := 0
		vals := rsp.PCRValues.Digests
		for _, s := range rsp.PCRSelectionOut.PCRSelections {
			b := pcr.Bank(s.Hash)
			for byteI, bits := range s.PCRSelect {
				for bit := range 8 {
					if bits&(1<<bit) == 0 {
						continue
					}
					i := byteI*8 + bit
					if len(vals) == 0 {
						return nil, false, fmt.Errorf("TPM selected more PCRs than it returned digests")
					}
					d := vals[0].Buffer
					vals = vals[1:]
					if !pending[bankPCR{b, i}] {
						return nil, false, fmt.Errorf("TPM returned bank %s PCR %d, which was not asked for", b, i)
					}
					if err := tp.checkSize(b, len(d)); err != nil {
						return nil, false, fmt.Errorf("bank %s PCR %d: %w", b, i, err)
					}
					delete(pending, bankPCR{b, i})
					set.Put(b, i, d)
					got++
				}
			}
		}
		if len(vals) != 0 {
			return nil, false, fmt.Errorf("TPM returned %d digests more than it selected", len(vals))
		}
		if got == 0 {
			var missing []string
			for _, b := range banks {
				for _, i := range indexes {
					if pending[bankPCR{b, i}] {
						missing = append(missing, fmt.Sprintf("%s:%d", b, i))
					}
				}
			}
			return nil, false, fmt.Errorf("TPM returned none of %v (bank not allocated?)", missing)
		}
	}
	return set, false, nil
}

// checkSize checks a digest's size against the bank, learning it for a bank
// imago does not know.
func (tp *TPM) checkSize(b pcr.Bank, n int) error {
	if b.Known() {
		if n != b.Size() {
			return fmt.Errorf("digest of %d bytes, want %d", n, b.Size())
		}
		return nil
	}
	if n == 0 || n > maxDigestSize {
		return fmt.Errorf("digest of %d bytes, want 1 to %d", n, maxDigestSize)
	}
	if old, ok := tp.sizes[b]; ok && old != n {
		return fmt.Errorf("digest of %d bytes, earlier %d", n, old)
	}
	tp.sizes[b] = n
	return nil
}

// Extend extends PCR index with one TPM2_PCR_Extend (TPM 2.0 Part 3 §22.2)
// whose TPML_DIGEST_VALUES carries every bank in digests, in ascending
// TPM_ALG_ID order, under a password session with empty auth. Each digest
// must have its bank's size (for a bank imago does not know, the size
// DigestSize reports). The TPM applies all banks or none.
func (tp *TPM) Extend(index int, digests map[pcr.Bank][]byte) error {
	if err := tp.lock(); err != nil {
		return err
	}
	defer tp.mu.Unlock()
	if n := 8 * tp.sizeofSelect; index < 0 || index >= n {
		return fmt.Errorf("tpm: %s: extend PCR %d: index outside [0, %d)", tp.name, index, n)
	}
	if len(digests) == 0 {
		return fmt.Errorf("tpm: %s: extend PCR %d: no digests", tp.name, index)
	}
	if len(digests) > maxBanks {
		return fmt.Errorf("tpm: %s: extend PCR %d: %d banks, more than %d", tp.name, index, len(digests), maxBanks)
	}
	var vals tpm2.TPMLDigestValues
	for _, b := range slices.Sorted(maps.Keys(digests)) {
		d := digests[b]
		want := b.Size()
		if !b.Known() {
			want = tp.sizes[b]
		}
		if (want != 0 && len(d) != want) || len(d) == 0 || len(d) > maxDigestSize {
			return fmt.Errorf("tpm: %s: extend PCR %d: bank %s digest of %d bytes, want %d", tp.name, index, b, len(d), want)
		}
		vals.Digests = append(vals.Digests, tpm2.TPMTHA{HashAlg: tpm2.TPMIAlgHash(b), Digest: d})
	}
	auth := tpm2.PasswordAuth(nil)
	if tp.guarded {
		if tp.guard == nil {
			return fmt.Errorf("tpm: %s: extend PCR %d: %w", tp.name, index, ErrGuardLost)
		}
		auth = tp.guard
	}
	_, err := run(tp.t, tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(index), Auth: auth},
		Digests:   vals,
	}.Execute)
	if err != nil {
		if tp.guarded {
			// Whatever failed, the session's state is no longer known:
			// nothing more goes through it.
			tp.guard, tp.guardClose = nil, nil
			if guardGone(err) {
				err = fmt.Errorf("%w: %w", ErrGuardLost, err)
			}
		}
		return fmt.Errorf("tpm: %s: extend PCR %d: %w", tp.name, index, err)
	}
	return nil
}

// guardGone reports a response code that says the session is not the one
// started: not loaded (a reset TPM, a different TPM, flushed), or another
// session under its handle (its HMAC does not verify).
func guardGone(err error) bool {
	for _, rc := range []tpm2.TPMRC{tpm2.TPMRCReferenceS0, tpm2.TPMRCBadAuth, tpm2.TPMRCAuthFail} {
		if errors.Is(err, rc) {
			return true
		}
	}
	return false
}
