package agent

import (
	"fmt"
	"path/filepath"

	"github.com/imago-ima/imago/ima"
)

// event is what one entry is built from: a file measurement or the boot
// aggregate (ima_event_data).
type event struct {
	Name   string      // path, or the aggregate's name
	Alg    ima.HashAlg // algorithm of Digest
	Digest []byte      // d-ng / d-ngv2 digest
	D      []byte      // legacy d digest: SHA-1 (or MD5) of the file, or the SHA-1 aggregate
	File   bool        // a file event: iuid, igid, imode, sig are filled
	UID    uint32
	GID    uint32
	Mode   uint16
	Sig    []byte // sig field: security.ima signature, or the EVM portable signature
	EVMSig []byte // evmsig field
	Buf    []byte // buf field
}

// maxLegacyName is IMA_EVENT_NAME_LEN_MAX (ima-spec.md §1.4).
const maxLegacyName = ima.MaxEventNameLen

// legacyName is the n field's name (ima-spec.md §3.3): longer than 255
// characters, a file's last path component, otherwise cut to 255.
func legacyName(ev *event) string {
	n := ev.Name
	if len(n) <= maxLegacyName {
		return n
	}
	if ev.File {
		if base := filepath.Base(n); len(base) <= maxLegacyName {
			return base
		}
	}
	return n[:maxLegacyName]
}

// field returns one field of ev (ima-spec.md §3.3, §3.4), built with the ima
// package's constructors.
func field(id string, ev *event, order byteOrder) (ima.Field, error) {
	switch id {
	case ima.FieldD:
		if len(ev.D) != 20 {
			return ima.Field{}, fmt.Errorf("agent: d field needs a 20-byte SHA-1 digest, have %d bytes", len(ev.D))
		}
		return ima.DigestLegacy(ev.D), nil
	case ima.FieldN:
		return ima.Name(legacyName(ev)), nil
	case ima.FieldDNG:
		return ima.DigestNG(ev.Alg, ev.Digest), nil
	case ima.FieldDNGv2:
		return ima.DigestNGv2("ima", ev.Alg, ev.Digest), nil
	case ima.FieldNNG:
		return ima.NameNG(ev.Name), nil
	case ima.FieldSig:
		return ima.Sig(ev.Sig), nil
	case ima.FieldEVMSig:
		return ima.EVMSig(ev.EVMSig), nil
	case ima.FieldBuf:
		return ima.Buf(ev.Buf), nil
	case ima.FieldIUID:
		if !ev.File {
			return ima.Field{ID: id}, nil
		}
		return ima.UID(order, ev.UID), nil
	case ima.FieldIGID:
		if !ev.File {
			return ima.Field{ID: id}, nil
		}
		return ima.GID(order, ev.GID), nil
	case ima.FieldIMode:
		if !ev.File {
			return ima.Field{ID: id}, nil
		}
		return ima.Mode(order, ev.Mode), nil
	case ima.FieldDModsig, ima.FieldModsig, ima.FieldXattrNames, ima.FieldXattrLengths, ima.FieldXattrValues:
		// No appended signatures and no EVM xattr enumeration: empty, as
		// the kernel writes them for a file without them.
		return ima.Field{ID: id}, nil
	}
	return ima.Field{}, fmt.Errorf("agent: template field %q not supported", id)
}

// buildEntry builds the list entry for ev in template t at PCR index pcrIdx
// (ima.NewEntry: template data as the kernel hashes it, ima-spec.md §4.1;
// Digest is the SHA-1 template digest of the classic list).
func buildEntry(t *ima.Template, ev *event, pcrIdx uint32, order byteOrder) (*ima.Entry, error) {
	fields := make([]ima.Field, 0, len(t.Fields))
	for _, id := range t.Fields {
		f, err := field(id, ev, order)
		if err != nil {
			return nil, err
		}
		fields = append(fields, f)
	}
	return ima.NewEntry(t.Name, order, pcrIdx, fields...)
}
