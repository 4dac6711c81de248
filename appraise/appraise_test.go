package appraise

import (
	"crypto"
	"encoding/json"
	"slices"
	"testing"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/internal/imahost"
	"github.com/imago-ima/imago/internal/softtpm"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/quote"
)

// node is an emulated attester: a software TPM and its IMA list.
type node struct {
	tp  *softtpm.TPM
	ak  crypto.PublicKey
	ima *imahost.Host
}

func newNode(t testing.TB) *node {
	t.Helper()
	tp, err := softtpm.New(nil, "")
	if err != nil {
		t.Fatal(err)
	}
	akPub, _ := tp.AKPublic()
	ak, err := quote.PublicKey(akPub)
	if err != nil {
		t.Fatal(err)
	}
	h, err := imahost.NewBooted(tp)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{tp: tp, ak: ak, ima: h}
	return n
}

var sel = quote.NewSelection([]pcr.Bank{pcr.SHA1, pcr.SHA256}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})

// evidence answers a challenge honestly.
func (n *node) evidence(t testing.TB, ch Challenge) *attest.Evidence {
	t.Helper()
	q, err := n.tp.Quote(ch.Nonce, ch.Selection)
	if err != nil {
		t.Fatal(err)
	}
	list, err := n.ima.ReadFrom(ch.Offset)
	if err != nil {
		t.Fatal(err)
	}
	return &attest.Evidence{Quote: attest.Quote{Attest: q.Attest, Signature: q.Signature}, PCRs: attest.PCRValues(q.PCRs), Offset: ch.Offset, List: list}
}

func ids(o Outcome) []string {
	var out []string
	for _, f := range o.Failures {
		out = append(out, f.ID)
	}
	return out
}

func TestRound(t *testing.T) {
	n := newNode(t)
	n.ima.Measure("/bin/a", []byte("a"))
	pol, err := CompilePolicy(n.ima.Policy(nil), nil, PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var st State
	ch := Challenge{Nonce: []byte("n1"), Selection: sel, Offset: st.Next()}
	o := Round(pol, n.ak, st, ch, n.evidence(t, ch))
	if o.Verdict != attest.VerdictPass || !o.Authentic || o.State.Next() != 2 {
		t.Fatalf("first round: %+v", o)
	}
	st = o.State

	// The list runs ahead of the quote: the entry after it is read again
	// next round.
	ch = Challenge{Nonce: []byte("n2"), Selection: sel, Offset: st.Next()}
	q, _ := n.tp.Quote(ch.Nonce, ch.Selection)
	n.ima.Measure("/bin/a", []byte("a"))
	list, _ := n.ima.ReadFrom(ch.Offset)
	ev := &attest.Evidence{Quote: attest.Quote{Attest: q.Attest, Signature: q.Signature}, PCRs: attest.PCRValues(q.PCRs), Offset: ch.Offset, List: list}
	o = Round(pol, n.ak, st, ch, ev)
	if o.Verdict != attest.VerdictPass || o.State.Next() != 2 {
		t.Fatalf("list ahead of the quote: %+v", o)
	}
	st = o.State

	// Attacks and mistakes, each on top of st.
	other := newNode(t)
	for name, tc := range map[string]struct {
		mod       func(ch *Challenge, ev *attest.Evidence)
		id        []string
		authentic bool
	}{
		"other nonce":     {func(ch *Challenge, ev *attest.Evidence) { ch.Nonce = []byte("x") }, []string{IDQuoteNonce}, false},
		"other selection": {func(ch *Challenge, ev *attest.Evidence) { ch.Selection = sel[1:] }, []string{IDQuoteSelection}, false},
		"other PCR value": {func(ch *Challenge, ev *attest.Evidence) { ev.PCRs[pcr.SHA1][10][0] ^= 1 }, []string{IDQuotePCRDigest}, false},
		"garbage quote":   {func(ch *Challenge, ev *attest.Evidence) { ev.Quote.Attest = []byte{1, 2, 3} }, []string{IDQuoteMalformed}, false},
		"other AK": {func(ch *Challenge, ev *attest.Evidence) {
			q, _ := other.tp.Quote(ch.Nonce, ch.Selection)
			ev.Quote, ev.PCRs = attest.Quote{Attest: q.Attest, Signature: q.Signature}, attest.PCRValues(q.PCRs)
		}, []string{IDQuoteSignature}, false},
		"other offset": {func(ch *Challenge, ev *attest.Evidence) { ev.Offset++ }, []string{IDOffset}, true},
		"garbage list": {func(ch *Challenge, ev *attest.Evidence) { ev.List = []byte{1, 2, 3} }, []string{IDList}, true},
		"tampered entry": {func(ch *Challenge, ev *attest.Evidence) {
			ev.List[len(ev.List)-1] ^= 1
		}, []string{"ima.validation.ima_hash", "ima.pcr_mismatch"}, true},
		"bad event log": {func(ch *Challenge, ev *attest.Evidence) { ev.EventLog = []byte("not a log") }, []string{IDEventLog}, true},
	} {
		t.Run(name, func(t *testing.T) {
			ch := Challenge{Nonce: []byte("n3"), Selection: sel, Offset: st.Next()}
			ev := n.evidence(t, ch)
			tc.mod(&ch, ev)
			o := Round(pol, n.ak, st, ch, ev)
			if o.Verdict != attest.VerdictFail || !slices.Equal(ids(o), tc.id) || o.Authentic != tc.authentic {
				t.Fatalf("%+v", o)
			}
			if o.State.Next() != st.Next() {
				t.Fatalf("the cursor moved: %d -> %d", st.Next(), o.State.Next())
			}
		})
	}

	// A replayed quote (older clock) is refused by the counters even with
	// the right nonce.
	ch = Challenge{Nonce: []byte("n4"), Selection: sel, Offset: st.Next()}
	old := n.evidence(t, ch)
	newer := n.evidence(t, ch)
	o = Round(pol, n.ak, st, ch, newer)
	if o.Verdict != attest.VerdictPass {
		t.Fatalf("%+v", o)
	}
	if o2 := Round(pol, n.ak, o.State, ch, old); !slices.Equal(ids(o2), []string{IDQuoteClock}) {
		t.Fatalf("replayed older quote: %+v", o2)
	}
	st = o.State

	// A reboot: the counters show a reset, the node starts over.
	n.tp.Reset()
	n.ima.Boot(n.tp.PCRs())
	ch = Challenge{Nonce: []byte("n5"), Selection: sel, Offset: st.Next()}
	n.ima.Measure("/bin/a", []byte("a"))
	ev = &attest.Evidence{}
	q, _ = n.tp.Quote(ch.Nonce, ch.Selection)
	ev.Quote, ev.PCRs, ev.Offset = attest.Quote{Attest: q.Attest, Signature: q.Signature}, attest.PCRValues(q.PCRs), ch.Offset
	o = Round(pol, n.ak, st, ch, ev)
	if o.Verdict != attest.VerdictRestart || o.Change != quote.Reset || o.State.Next() != 0 || o.State.Clock == nil {
		t.Fatalf("reboot: %+v", o)
	}
	st = o.State
	ch = Challenge{Nonce: []byte("n6"), Selection: sel, Offset: 0}
	o = Round(pol, n.ak, st, ch, n.evidence(t, ch))
	if o.Verdict != attest.VerdictPass || o.State.Next() != 2 {
		t.Fatalf("after the reboot: %+v", o)
	}
	// The state survives JSON (it is stored).
	b, _ := json.Marshal(o.State)
	var back State
	if err := json.Unmarshal(b, &back); err != nil || back.Next() != 2 || back.Clock == nil {
		t.Fatalf("state JSON: %s %v", b, err)
	}

	// A file outside the policy fails naming it.
	n.ima.Measure("/tmp/evil", []byte("evil"))
	ch = Challenge{Nonce: []byte("n7"), Selection: sel, Offset: back.Next()}
	o = Round(pol, n.ak, back, ch, n.evidence(t, ch))
	if o.Verdict != attest.VerdictFail || len(o.Failures) != 1 || o.Failures[0].Path != "/tmp/evil" || o.Failures[0].Entry != 2 || !o.Authentic {
		t.Fatalf("file outside the policy: %+v", o)
	}
}

// FuzzRound: evidence from an attester, any bytes, judged against a node:
// no panic, and nothing that is not the node's honest evidence passes.
func FuzzRound(f *testing.F) {
	n := newNode(f)
	n.ima.Measure("/bin/a", []byte("a"))
	pol, _ := CompilePolicy(n.ima.Policy(nil), nil, PolicyOptions{})
	ch := Challenge{Nonce: []byte("fuzz nonce"), Selection: sel}
	good, _ := json.Marshal(n.evidence(f, ch))
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := attest.DecodeEvidence(data)
		if err != nil {
			return
		}
		o := Round(pol, n.ak, State{}, ch, ev)
		if o.Verdict == attest.VerdictPass && (len(o.Failures) > 0 || !o.Authentic) {
			t.Fatalf("pass with failures or unauthenticated: %+v", o)
		}
	})
}
