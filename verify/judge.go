package verify

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"

	"github.com/imago-ima/imago/bootagg"
	"github.com/imago-ima/imago/ima"
	"github.com/imago-ima/imago/ima/digsig"
	"github.com/imago-ima/imago/runtimepolicy"
)

// IDParser: an entry whose template data does not split into its
// template's fields (Keylime: the line does not parse).
const IDParser = "ima.parser.entry"

// view is one entry as the rules see it, every slice aliasing its batch.
type view struct {
	index    int
	pcr      int
	template string
	name     []byte
	hasName  bool
	digest   ima.Digest
	digestOK bool
	sigField bool // the template has a sig field
	sig      []byte
	bufField bool
	buf      []byte
	// hash is name's hash for Compiled.DigestsHashed (hashed: computed).
	hash   uint64
	hashed bool
}

// sigWellFormed is Keylime's check of a signature field (ast.py
// Signature): at least the 9-byte header, and its size field equal to the
// bytes that follow. Keylime re-encodes a line without a malformed
// signature, so its template hash no longer matches: the entry fails even
// where the path is excluded.
func sigWellFormed(sig []byte) bool {
	return len(sig) >= 9 && 9+int(binary.BigEndian.Uint16(sig[7:9])) == len(sig)
}

// digestRule is Keylime's _validate_ima_ng: with a policy, an excluded name
// passes, a name the map lacks is not_in_allowlist, a digest the name's
// list lacks is runtime_policy_hash. Without a policy everything passes.
func (p *Policy) digestRule(v *view, lookup lookupFunc, out []Failure) []Failure {
	if p.rp == nil || p.rp.Excluded(v.name) {
		return out
	}
	ds, ok := lookup(p.rp, v.name, v.hash, v.hashed)
	if !ok {
		return append(out, Failure{Entry: v.index, Path: string(v.name), ID: IDNotInAllowlist, Template: v.template,
			Got: digestString(v.digest), Message: "not in the policy"})
	}
	if !ds.Contains(v.digest.Sum) {
		return append(out, Failure{Entry: v.index, Path: string(v.name), ID: IDRuntimePolicyHash, Template: v.template,
			Expected: ds.Hex(), Got: hex.EncodeToString(v.digest.Sum), Message: "digest not in the policy"})
	}
	return out
}

// lookupFunc finds a name in one of the policy's maps; hash is the name's
// hash when hashed (Compiled.WarmPaths computed it: digests only).
type lookupFunc func(c *runtimepolicy.Compiled, name []byte, hash uint64, hashed bool) (runtimepolicy.Digests, bool)

func lookupDigests(c *runtimepolicy.Compiled, name []byte, hash uint64, hashed bool) (runtimepolicy.Digests, bool) {
	if hashed {
		return c.DigestsHashed(name, hash)
	}
	return c.Digests(name)
}
func lookupKeyring(c *runtimepolicy.Compiled, name []byte, _ uint64, _ bool) (runtimepolicy.Digests, bool) {
	return c.Keyring(name)
}
func lookupIMABuf(c *runtimepolicy.Compiled, name []byte, _ uint64, _ bool) (runtimepolicy.Digests, bool) {
	return c.IMABuf(name)
}

// sigRule is Keylime's _validate_ima_sig: where keys exist (a policy or
// keys were given), an excluded path passes and a valid signature passes
// whatever the policy lists; otherwise the digest rule decides; with keys
// but no policy, the entry fails.
func (p *Policy) sigRule(v *view, keys []digsig.Key, out []Failure) []Failure {
	if p.keysMode() && len(v.sig) > 0 {
		if p.rp != nil && p.rp.Excluded(v.name) {
			return out
		}
		if h, err := ima.ParseSigHeader(v.sig); err == nil && digsig.VerifyHeaderWith(h, v.digest, keys) == nil {
			return out
		}
	}
	if p.rp != nil {
		return p.digestRule(v, lookupDigests, out)
	}
	if !p.keysMode() {
		return out
	}
	msg := "no signature"
	if len(v.sig) > 0 {
		msg = "no given key verifies the signature"
		if h, err := ima.ParseSigHeader(v.sig); err == nil {
			msg += " (keyid " + hex.EncodeToString(binary.BigEndian.AppendUint32(nil, h.KeyID)) + ")"
		}
	}
	return append(out, Failure{Entry: v.index, Path: string(v.name), ID: IDInvalidSignature, Template: v.template,
		Got: digestString(v.digest), Message: msg})
}

// keyRule is Keylime's _validate_ima_buf for a buffer holding a key: a
// keyring the policy ignores passes; otherwise the key's digest must be in
// keyrings[<keyring>]. It reports whether the key may be learned.
func (p *Policy) keyRule(v *view, out []Failure) ([]Failure, bool) {
	if p.rp != nil && p.rp.KeyringIgnored(v.name) {
		return out, false
	}
	n := len(out)
	out = p.digestRule(v, lookupKeyring, out)
	return out, len(out) == n
}

// judge applies the content rules to an entry whose PCR, violation and
// template digest checks are done. keyVerdict holds the reader's verdict
// for a key buffer (isKey).
func (p *Policy) judge(v *view, keys []digsig.Key, isKey bool, keyFails []Failure, r *roundCtx, out []Failure) ([]Failure, *BootAggregateResult) {
	if v.sigField && len(v.sig) > 0 && !sigWellFormed(v.sig) {
		return append(out, Failure{Entry: v.index, Path: string(v.name), ID: IDTemplateHash, Template: v.template,
			Message: "malformed signature header (Keylime re-encodes the entry without it, and its template hash no longer matches)"}), nil
	}
	if v.hasName && v.digestOK && IsBootAggregateName(v.name) && (p.rp != nil || r.hasBootSources() || isBypassHead(v)) {
		// Whether the TPM holds the list is known once every bank is
		// replayed: Verify judges a bypass head again then (held).
		res, f := p.CheckBootAggregate(v.index, string(v.name), v.digest, r.eventLog, r.pcrs, false)
		if f != nil {
			f.Template = v.template
			out = append(out, *f)
		}
		return out, &res
	}
	switch {
	case isKey:
		return append(out, keyFails...), nil
	case v.bufField && v.hasName && v.digestOK:
		return p.digestRule(v, lookupIMABuf, out), nil
	case v.hasName && v.digestOK && v.sigField:
		return p.sigRule(v, keys, out), nil
	case v.hasName && v.digestOK:
		return p.digestRule(v, lookupDigests, out), nil
	}
	if p.rp != nil {
		return append(out, Failure{Entry: v.index, Path: string(v.name), ID: IDNoValidator, Template: v.template,
			Message: "the template has no digest and name to judge"}), nil
	}
	return out, nil
}

// isBypassHead reports whether v is a list's first entry with the
// TPM-bypass boot aggregate (zeros): always judged, never silently passed.
func isBypassHead(v *view) bool {
	return v.index == 0 && bootagg.IsBypass(v.digest.Sum)
}

// fillView decodes an entry's fields (which alias data) into v.
func fillView(v *view, fields []ima.Field) {
	for _, f := range fields {
		switch f.ID {
		case ima.FieldN, ima.FieldNNG:
			v.hasName = true
			v.name = f.Data
			if i := bytes.IndexByte(v.name, 0); i >= 0 {
				v.name = v.name[:i]
			}
		case ima.FieldD, ima.FieldDNG, ima.FieldDNGv2:
			if !v.digestOK {
				if d, ok := commonDigest(f); ok {
					v.digest, v.digestOK = d, true
				} else if d, err := ima.ParseDigestField(f.ID, f.Data); err == nil {
					v.digest, v.digestOK = d, true
				}
			}
		case ima.FieldSig:
			v.sigField, v.sig = true, f.Data
		case ima.FieldBuf:
			v.bufField, v.buf = true, f.Data
		}
	}
}

// commonDigest reads the d-ng fields of almost every entry, sha256 and
// sha1, as ima.ParseDigestField does (the fuzz test compares them), without
// its general parse.
func commonDigest(f ima.Field) (ima.Digest, bool) {
	switch {
	case f.ID != ima.FieldDNG:
	case len(f.Data) == 8+32 && string(f.Data[:8]) == "sha256:\x00":
		return ima.Digest{Alg: ima.HashSHA256, Sum: f.Data[8:]}, true
	case len(f.Data) == 6+20 && string(f.Data[:6]) == "sha1:\x00":
		return ima.Digest{Alg: ima.HashSHA1, Sum: f.Data[6:]}, true
	}
	return ima.Digest{}, false
}
