package appraise

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/eventlog"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
)

// Failure ids of the quote and evidence checks (the entries' ids are
// package verify's).
const (
	IDQuoteMalformed  = "quote.malformed"
	IDQuoteSignature  = "quote.signature"
	IDQuoteNonce      = "quote.nonce"
	IDQuoteSelection  = "quote.pcr_selection"
	IDQuotePCRDigest  = "quote.pcr_digest"
	IDQuoteClock      = "quote.clock"
	IDOffset          = "evidence.offset"
	IDList            = "evidence.list"
	IDEventLog        = "evidence.event_log"
	IDVerify          = "evidence.unverifiable"
	IDBootPCRMismatch = "measured_boot.pcr_mismatch"
)

// State is what the verifier keeps per node between rounds. Its JSON form
// is stored.
type State struct {
	// Clock is the last accepted quote's clock information; nil before the
	// first.
	Clock *quote.ClockInfo `json:"clock,omitempty"`
	// Verify is the runtime policy's incremental state (next entry,
	// running PCRs, learned keys, boot aggregate judged).
	Verify VerifyState `json:"verify"`
	// BootLog says the firmware event log was judged since the last
	// reboot.
	BootLog bool `json:"boot_log,omitempty"`
}

// Next returns the index of the next list entry to verify.
func (s *State) Next() uint64 { return uint64(s.Verify.Next) }

// Challenge is what the verifier asked for in this round.
type Challenge struct {
	Nonce     []byte
	Selection quote.Selection
	Offset    uint64
	EventLog  bool
}

// Outcome is one round's result.
type Outcome struct {
	// Verdict is attest.VerdictPass, VerdictFail or VerdictRestart.
	Verdict  string
	Failures []attest.Failure
	// Authentic says the evidence was proven to come from the node's TPM
	// (signature, nonce and clock checked): its failures are the node's.
	Authentic bool
	// Change is what the signed counters say happened since the last
	// round.
	Change quote.Change
	// State is the node's next state (unchanged from the previous one when
	// the evidence was not authentic).
	State State
	// Clock is the quote's clock information, if it decoded.
	Clock *quote.ClockInfo
}

func fail(prev State, id, detail string) Outcome {
	return Outcome{Verdict: attest.VerdictFail, State: prev,
		Failures: []attest.Failure{{Entry: -1, ID: id, Detail: detail}}}
}

// Round judges evidence for a challenge against the node's AK (its public
// key, from quote.PublicKey), its policy and its previous state.
func Round(p *Policy, ak crypto.PublicKey, prev State, ch Challenge, ev *attest.Evidence) Outcome {
	q, err := quote.Parse(ev.Quote.Attest, ev.Quote.Signature)
	if err != nil {
		return fail(prev, IDQuoteMalformed, err.Error())
	}
	if err := q.CheckSignatureKey(ak); err != nil {
		return fail(prev, IDQuoteSignature, err.Error())
	}
	if err := q.CheckNonce(ch.Nonce); err != nil {
		return fail(prev, IDQuoteNonce, err.Error())
	}
	if err := q.CheckSelection(ch.Selection); err != nil {
		return fail(prev, IDQuoteSelection, err.Error())
	}
	if err := q.CheckPCRs(pcr.Set(ev.PCRs)); err != nil {
		return fail(prev, IDQuotePCRDigest, err.Error())
	}
	clock := q.Clock
	change := quote.Same
	if prev.Clock != nil {
		c, err := quote.CheckClock(*prev.Clock, q.Clock)
		if err != nil {
			o := fail(prev, IDQuoteClock, err.Error())
			o.Clock = &clock
			return o
		}
		change = c
	}
	// From here the evidence is the TPM's: the AK signed this round's
	// nonce and the counters move forward.
	next := prev
	next.Clock = &clock
	if change != quote.Same {
		next = State{Clock: &clock}
		if ch.Offset != 0 {
			return Outcome{Verdict: attest.VerdictRestart, Authentic: true, Change: change, State: next, Clock: &clock}
		}
	}
	out := Outcome{Authentic: true, Change: change, Clock: &clock}
	failed := func(id, detail string) Outcome {
		out.Verdict = attest.VerdictFail
		out.Failures = append(out.Failures, attest.Failure{Entry: -1, ID: id, Detail: detail})
		out.State = next
		return out
	}
	if ev.Offset != ch.Offset || ev.Offset != next.Next() {
		return failed(IDOffset, fmt.Sprintf("list starts at entry %d, asked for %d", ev.Offset, ch.Offset))
	}
	entries, err := decodeList(ev.List)
	if err != nil {
		return failed(IDList, err.Error())
	}
	var boot pcr.Set
	if len(ev.EventLog) > 0 {
		set, err := replayEventLog(ev.EventLog)
		if err != nil {
			return failed(IDEventLog, err.Error())
		}
		if fs := compareBoot(set, pcr.Set(ev.PCRs), ch.Selection); len(fs) > 0 {
			out.Verdict = attest.VerdictFail
			out.Failures = fs
			out.State = next
			return out
		}
		boot = set
		next.BootLog = true
	}

	fs, vs, err := verifyEntries(p, next.Verify, entries, pcr.Set(ev.PCRs), boot)
	if err != nil {
		return failed(IDVerify, err.Error())
	}
	next.Verify = vs
	out.State = next
	out.Failures = fs
	out.Verdict = attest.VerdictPass
	if len(fs) > 0 {
		out.Verdict = attest.VerdictFail
	}
	return out
}

// MaxEntries bounds the entries of one round.
const MaxEntries = 1 << 20

// decodeList reads a binary measurement list (any byte order and digest
// width, detected from the first record).
func decodeList(b []byte) ([]*ima.Entry, error) {
	// A small round needs no 64 KiB read buffer (ima.NewReader's default).
	r := ima.NewReader(bufio.NewReaderSize(bytes.NewReader(b), min(max(len(b), 4096), 64<<10)), ima.ReaderOptions{AllowUnknownTemplates: true})
	var out []*ima.Entry
	for e, err := range r.All() {
		if err != nil {
			return nil, err
		}
		if len(out) == MaxEntries {
			return nil, fmt.Errorf("more than %d entries in one round", MaxEntries)
		}
		out = append(out, e)
	}
	return out, nil
}

// replayEventLog reads and replays a TCG firmware log.
func replayEventLog(b []byte) (pcr.Set, error) {
	l, err := eventlog.ReadLog(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	set, _, err := l.Replay()
	if err != nil {
		return nil, err
	}
	if len(set) == 0 {
		return nil, errors.New("the event log replays no bank")
	}
	return set, nil
}

// bootPCRs are the PCRs the firmware log covers for the boot aggregate.
const bootPCRs = 10

// compareBoot compares the replayed PCR 0-9 with the quoted values, in
// every quoted bank the log has.
func compareBoot(replayed, quoted pcr.Set, sel quote.Selection) []attest.Failure {
	var out []attest.Failure
	any := false
	for _, bs := range sel {
		if _, ok := replayed[bs.Bank]; !ok {
			continue
		}
		for _, i := range bs.PCRs {
			if i >= bootPCRs {
				continue
			}
			any = true
			want, _ := quoted.Get(bs.Bank, i)
			got, ok := replayed.Get(bs.Bank, i)
			if !ok {
				got = make([]byte, bs.Bank.Size())
			}
			if !bytes.Equal(want, got) {
				out = append(out, attest.Failure{Entry: -1, ID: IDBootPCRMismatch,
					Detail: fmt.Sprintf("PCR %d %s: event log replays to %x, quoted %x", i, bs.Bank, got, want)})
			}
		}
	}
	if !any {
		out = append(out, attest.Failure{Entry: -1, ID: IDBootPCRMismatch, Detail: "the event log has none of the quoted banks"})
	}
	return out
}
