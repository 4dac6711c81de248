package verify_test

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/pcr"
	"github.com/imago-ima/imago/runtimepolicy"
	"github.com/imago-ima/imago/verify"
)

// A verifier compiles the policy once, then verifies each node's list in
// rounds, keeping a small State per node between them (stored with the
// verdict). Each round passes the entries from State.Next on and, when it
// has one, the quoted PCR values.
func Example() {
	rp, err := runtimepolicy.Compile(strings.NewReader(`{"meta": {"version": 1}, "digests": {
		"boot_aggregate": ["`+strings.Repeat("5a", 32)+`"],
		"/usr/bin/true": ["`+strings.Repeat("ab", 32)+`"]}}`), runtimepolicy.Options{})
	if err != nil {
		panic(err)
	}
	policy, err := verify.NewPolicy(verify.Options{RuntimePolicy: rp})
	if err != nil {
		panic(err)
	}
	entry := func(path string, b byte) *ima.Entry {
		e, _ := ima.NewEntry(ima.TemplateIMANG, nil, 10, ima.DigestNG(ima.HashSHA256, bytes.Repeat([]byte{b}, 32)), ima.NameNG(path))
		return e
	}
	list := []*ima.Entry{entry("boot_aggregate", 0x5a), entry("/usr/bin/true", 0xab), entry("/tmp/evil", 0xcd)}
	pcr10 := make([]byte, 20)
	for _, e := range list[:2] {
		pcr10 = pcr.Extend(pcr.SHA1, pcr10, e.TemplateDigest(pcr.SHA1))
	}

	// Round 1: the quote was taken after two entries; the list read after
	// it has three. Two are consumed, the third waits for the next quote.
	var state verify.State
	rep, next, err := policy.Verify(&state, verify.Round{
		Entries: verify.Entries(list),
		Quoted:  pcr.Set{pcr.SHA1: {10: pcr10}},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(rep.Pass(), rep.Read, rep.Consumed, next.Next, next.BootAggregate)

	// Round 2: no quote (offline): the rest of the list is consumed.
	rep, next, err = policy.Verify(next, verify.Round{Entries: verify.Entries(list[next.Next:])})
	if err != nil {
		panic(err)
	}
	for _, f := range rep.Failures {
		fmt.Println(f.Entry, f.Path, f.ID)
	}
	fmt.Println(rep.Pass(), next.Next, next.Failed)
	// Output:
	// true 3 2 2 pass
	// 2 /tmp/evil ima.validation.ima-ng.not_in_allowlist
	// false 3 1
}
