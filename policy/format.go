package policy

import (
	"io"
	"strconv"

	"github.com/imago-ima/imago/ima"
)

// maxFSNameShown is what ima_policy_show prints of fsname=: it goes through
// a 64-byte buffer (snprintf(tbuf, sizeof(tbuf), "%s", ...)).
const maxFSNameShown = 63

// AppendRule appends r as ima_policy_show prints it (ima-spec.md §8.9): the
// action and a space, then each condition followed by a space, in the
// kernel's fixed order, then a newline. Kernel wins over §8.9 in the details:
//   - func= prints the canonical name (PATH_CHECK reads back as FILE_CHECK);
//   - ids print with %d, so an id of 2^31 or more reads back negative;
//   - fsname= is cut to 63 bytes;
//   - appraise_flag= is never shown (the kernel ignores it).
//
// LSM conditions are always shown: the kernel hides a rule whose LSM label is
// not active, which only the running kernel knows.
func AppendRule(b []byte, r *Rule) []byte {
	b = append(b, r.Action.String()...)
	b = append(b, ' ')
	if r.Func != FuncNone {
		b = append(b, "func="...)
		b = append(b, r.Func.String()...)
		b = append(b, ' ')
	}
	if r.Mask != 0 {
		for _, m := range [...]struct {
			bit  Mask
			name string
		}{{MayExec, "MAY_EXEC"}, {MayWrite, "MAY_WRITE"}, {MayRead, "MAY_READ"}, {MayAppend, "MAY_APPEND"}} {
			if r.Mask&m.bit == 0 {
				continue
			}
			b = append(b, "mask="...)
			if r.MaskIncludes {
				b = append(b, '^')
			}
			b = append(b, m.name...)
		}
		b = append(b, ' ')
	}
	if r.HasFSMagic {
		b = append(b, "fsmagic=0x"...)
		b = strconv.AppendUint(b, r.FSMagic, 16)
		b = append(b, ' ')
	}
	if r.FSName != "" {
		n := r.FSName
		if len(n) > maxFSNameShown {
			n = n[:maxFSNameShown]
		}
		b = append(b, "fsname="...)
		b = append(b, n...)
		b = append(b, ' ')
	}
	if r.Keyrings != nil {
		b = appendList(b, "keyrings=", r.Keyrings)
	}
	if r.Labels != nil {
		b = appendList(b, "label=", r.Labels)
	}
	if r.HasPCR {
		b = append(b, "pcr="...)
		b = strconv.AppendInt(b, int64(r.PCR), 10)
		b = append(b, ' ')
	}
	if r.HasFSUUID {
		b = append(b, "fsuuid="...)
		b = appendUUID(b, r.FSUUID)
		b = append(b, ' ')
	}
	b = appendID(b, "uid", r.UID)
	b = appendID(b, "euid", r.EUID)
	b = appendID(b, "gid", r.GID)
	b = appendID(b, "egid", r.EGID)
	b = appendID(b, "fowner", r.FOwner)
	b = appendID(b, "fgroup", r.FGroup)
	if r.AppraiseAlgos != 0 {
		b = append(b, "appraise_algos="...)
		n := 0
		for a := ima.HashAlg(0); a.Valid(); a++ {
			if !r.AppraiseAlgos.Has(a) {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, a.String()...)
			n++
		}
		b = append(b, ' ')
	}
	for i, l := range r.LSM {
		if l == "" {
			continue
		}
		b = append(b, lsmNames[i]...)
		b = append(b, '=')
		b = append(b, l...)
		b = append(b, ' ')
	}
	if r.Template != "" {
		b = append(b, "template="...)
		b = append(b, r.Template...)
		b = append(b, ' ')
	}
	if r.DigSig {
		switch {
		case r.SigV3:
			b = append(b, "appraise_type=sigv3 "...)
		case r.ModSig:
			b = append(b, "appraise_type=imasig|modsig "...)
		default:
			b = append(b, "appraise_type=imasig "...)
		}
	}
	if r.Verity {
		b = append(b, "digest_type=verity "...)
	}
	if r.PermitDirectIO {
		b = append(b, "permit_directio "...)
	}
	return append(b, '\n')
}

func appendList(b []byte, key string, list []string) []byte {
	b = append(b, key...)
	for i, s := range list {
		if i > 0 {
			b = append(b, '|')
		}
		b = append(b, s...)
	}
	return append(b, ' ')
}

func appendID(b []byte, key string, c IDCond) []byte {
	if !c.Set {
		return b
	}
	b = append(b, key...)
	b = append(b, c.Op.String()...)
	// %d of a kuid_t value: signed (kernel wins).
	b = strconv.AppendInt(b, int64(int32(c.Value)), 10)
	return append(b, ' ')
}

func appendUUID(b []byte, u [16]byte) []byte {
	const hex = "0123456789abcdef"
	for i, x := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, hex[x>>4], hex[x&15])
	}
	return b
}

// Format returns the policy as `cat <securityfs>/ima/policy` would print it
// on a kernel with CONFIG_IMA_READ_POLICY.
func (p *Policy) Format() string {
	var b []byte
	for i := range p.Rules {
		b = AppendRule(b, &p.Rules[i])
	}
	return string(b)
}

// WriteTo writes Format's text to w.
func (p *Policy) WriteTo(w io.Writer) (int64, error) {
	n, err := io.WriteString(w, p.Format())
	return int64(n), err
}

// String returns the rule's read-back line without the newline.
func (r Rule) String() string {
	b := AppendRule(nil, &r)
	return string(b[:len(b)-1])
}
