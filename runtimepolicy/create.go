package runtimepolicy

import (
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"slices"

	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
)

// FromListOptions choose what FromList takes from ima-buf entries
// (keylime-policy create runtime -k, -b, --ignored-keyrings).
type FromListOptions struct {
	// Keyrings: the digests of keys loaded onto keyrings (ima-buf entries
	// whose buffer is a certificate) go to keyrings[<keyring>].
	Keyrings bool
	// IMABuf: the digests of other ima-buf entries go to ima-buf[<name>].
	IMABuf bool
	// Ignored keyrings are left out of keyrings.
	Ignored []string
}

// ListDigests is what a measurement list contributes to a policy.
type ListDigests struct {
	Digests, Keyrings, IMABuf *DigestMap
	// BootAggregateAlg is the algorithm of the boot aggregate's digest
	// ("" when the list has none), which keylime-policy takes as the
	// policy's digest algorithm.
	BootAggregateAlg string
}

// FromList collects the file digests of a measurement list by path (every
// template with a file digest and a name: ima-ng, ima-sig, ima-ngv2,
// ima-sigv2, ima-modsig, evm-sig, legacy ima, custom formats), the boot
// aggregate included (boot_aggregate_late is listed as boot_aggregate, the
// name a policy gives it), and, as opts ask, the digests of ima-buf
// entries.
func FromList(entries iter.Seq2[*ima.Entry, error], opts FromListOptions) (*ListDigests, error) {
	out := &ListDigests{Digests: NewDigestMap(), Keyrings: NewDigestMap(), IMABuf: NewDigestMap()}
	for e, err := range entries {
		if err != nil {
			return nil, err
		}
		name, err := e.Name()
		if err != nil {
			continue
		}
		d, err := e.FileDigest()
		if err != nil {
			continue
		}
		boot := name == "boot_aggregate" || name == "boot_aggregate_late"
		if boot && out.BootAggregateAlg == "" {
			out.BootAggregateAlg = d.Alg.String()
		}
		if e.IsViolation() {
			continue // a zeroed digest says nothing about the file
		}
		sum := hex.EncodeToString(d.Sum)
		if buf, ok := e.Field(ima.FieldBuf); ok {
			if _, err := x509.ParseCertificate(buf); err == nil {
				if opts.Keyrings && !slices.Contains(opts.Ignored, name) && !slices.Contains(opts.Ignored, "*") {
					out.Keyrings.Add(name, sum)
				}
				continue
			}
			if opts.IMABuf {
				out.IMABuf.Add(name, sum)
			}
			continue
		}
		if boot {
			name = "boot_aggregate"
		}
		out.Digests.Add(name, sum)
	}
	return out, nil
}

// AlgorithmFromHex guesses a digest algorithm from a hex digest's length as
// keylime-policy does: sha1, sha256 (or sm3: the two have the same size),
// sha384, sha512; "" if the length fits none.
func AlgorithmFromHex(h string) string {
	switch len(h) {
	case 40:
		return "sha1"
	case 64:
		return "sha256"
	case 96:
		return "sha384"
	case 128:
		return "sha512"
	}
	return ""
}

// CreateOptions are keylime-policy create runtime's inputs, applied in its
// order: Base, then Allowlist, List and Dir digests merged, Excludes
// appended, IgnoredKeyrings added, List keyrings and ima-buf digests,
// VerificationKeys; every list sorted and made unique; generator
// LegacyAllowList and Timestamp set.
type CreateOptions struct {
	Base             *Policy
	Allowlist        *Allowlist
	Lists            []*ListDigests
	Dir              *DigestMap
	Excludes         []string
	IgnoredKeyrings  []string
	VerificationKeys []digsig.Key
	Timestamp        string
}

// Create builds a policy as keylime-policy create runtime does.
func Create(o CreateOptions) (*Policy, error) {
	p := New()
	if b := o.Base; b != nil {
		// update_base_policy: cherry-pick what the current format has.
		p.Digests.Merge(b.Digests)
		p.Excludes = sortedUnique(append(p.Excludes, b.Excludes...))
		p.Keyrings.Merge(b.Keyrings)
		p.IMABuf.Merge(b.IMABuf)
		p.IMA.LogHashAlg = b.IMA.LogHashAlg
		p.IMA.IgnoredKeyrings = sortedUnique(append(p.IMA.IgnoredKeyrings, b.IMA.IgnoredKeyrings...))
		p.VerificationKeys = b.VerificationKeys
	}
	if o.Allowlist != nil {
		p.Digests.Merge(o.Allowlist.Digests)
		p.Keyrings.Merge(o.Allowlist.Keyrings)
	}
	for _, l := range o.Lists {
		p.Digests.Merge(l.Digests)
	}
	if o.Dir != nil {
		p.Digests.Merge(o.Dir)
	}
	p.Excludes = append(p.Excludes, o.Excludes...)
	p.IMA.IgnoredKeyrings = append(p.IMA.IgnoredKeyrings, o.IgnoredKeyrings...)
	for _, l := range o.Lists {
		for _, n := range l.Keyrings.Names() {
			if slices.Contains(p.IMA.IgnoredKeyrings, n) {
				continue
			}
			v, _ := l.Keyrings.Get(n)
			p.Keyrings.Add(n, v...)
		}
		for _, n := range l.IMABuf.Names() {
			v, _ := l.IMABuf.Get(n)
			p.IMABuf.Add(n, v...)
		}
	}
	if len(o.VerificationKeys) > 0 {
		keys, err := ParseVerificationKeys(p.VerificationKeys)
		if err != nil {
			return nil, err
		}
		s, err := FormatVerificationKeys(append(keys, o.VerificationKeys...))
		if err != nil {
			return nil, err
		}
		p.VerificationKeys = s
	}
	p.Digests.Normalize()
	p.Keyrings.Normalize()
	p.IMABuf.Normalize()
	p.Excludes = sortedUnique(p.Excludes)
	p.IMA.IgnoredKeyrings = sortedUnique(p.IMA.IgnoredKeyrings)
	p.Meta.Generator = GeneratorLegacyAllowList
	p.Meta.HasGenerator = true
	p.Meta.Timestamp = o.Timestamp
	if err := p.Check(); err != nil {
		return nil, err
	}
	return p, nil
}

// ErrMixedAlgorithms: the inputs of Create hold digests of different
// algorithms (keylime-policy aborts the same way).
var ErrMixedAlgorithms = errors.New("runtimepolicy: the inputs use different digest algorithms")

// DigestAlgorithm picks the file digest algorithm of a new policy as
// keylime-policy does: the one asked for, else that of the base policy's
// first digest, else the allowlist's, else the measurement list's boot
// aggregate, else sha256. sha256 and sm3 share a size and agree with each
// other. Inputs that disagree give ErrMixedAlgorithms.
func DigestAlgorithm(asked string, o CreateOptions) (string, error) {
	type src struct{ alg, from string }
	first := func(m *DigestMap) string {
		if m == nil || m.Len() == 0 {
			return ""
		}
		v, _ := m.Get(m.Names()[0])
		if len(v) == 0 {
			return ""
		}
		if a := AlgorithmFromHex(v[0]); a != "" {
			return a
		}
		return "invalid"
	}
	srcs := []src{{asked, "the algorithm asked for"}}
	if o.Base != nil {
		srcs = append(srcs, src{first(o.Base.Digests), "the base policy"})
	}
	if o.Allowlist != nil {
		srcs = append(srcs, src{first(o.Allowlist.Digests), "the allowlist"})
	}
	for _, l := range o.Lists {
		srcs = append(srcs, src{l.BootAggregateAlg, "the measurement list's boot aggregate"})
	}
	alg := ""
	from := ""
	for _, s := range srcs {
		a := s.alg
		if a == "" {
			continue
		}
		if a == "sm3" || a == "sm3_256" {
			a = "sha256" // same size; see the doc comment
		}
		if a == "invalid" {
			return "", fmt.Errorf("%w: the digests of %s fit no known algorithm", ErrMixedAlgorithms, s.from)
		}
		if alg == "" {
			alg, from = a, s.from
			continue
		}
		if a != alg {
			return "", fmt.Errorf("%w: %s in %s, %s in %s", ErrMixedAlgorithms, alg, from, s.alg, s.from)
		}
	}
	if alg == "" {
		alg = "sha256"
	}
	if asked != "" {
		alg = asked
	}
	return alg, nil
}
