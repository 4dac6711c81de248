package runtimepolicy

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/imago-ima/imago/ima/digsig"
)

// ParseVerificationKeys decodes a policy's verification-keys string, the
// JSON document Keylime's ImaKeyring.to_string writes: {"pubkeys": [base64
// DER public key], "keyids": [int]}. keyids[i], when present and not zero,
// is the keyid of pubkeys[i]; otherwise the key's own keyid is used
// (file_signatures.ImaKeyring.from_string). "" gives no keys. Keylime logs
// and ignores a document that breaks its schema; imago refuses it.
func ParseVerificationKeys(s string) ([]digsig.Key, error) {
	if s == "" {
		return nil, nil
	}
	doc := []byte(s)
	var v struct {
		KeyIDs  *[]json.Number `json:"keyids"`
		PubKeys *[]string      `json:"pubkeys"`
	}
	// Keylime's database stores it once more quoted; from_string unquotes.
	var inner string
	if json.Unmarshal(doc, &inner) == nil {
		doc = []byte(inner)
	}
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, fmt.Errorf("runtimepolicy: verification-keys: %v", err)
	}
	if v.KeyIDs == nil || v.PubKeys == nil {
		return nil, fmt.Errorf("runtimepolicy: verification-keys: want both keyids and pubkeys (Keylime's schema)")
	}
	if len(*v.PubKeys) > digsig.MaxKeys {
		return nil, fmt.Errorf("runtimepolicy: verification-keys: %d keys, more than %d", len(*v.PubKeys), digsig.MaxKeys)
	}
	keys := make([]digsig.Key, 0, len(*v.PubKeys))
	for i, b64 := range *v.PubKeys {
		der, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, fmt.Errorf("runtimepolicy: verification-keys: pubkeys[%d]: %v", i, err)
		}
		k, err := digsig.ParseKey(der)
		if err != nil {
			return nil, fmt.Errorf("runtimepolicy: verification-keys: pubkeys[%d]: %w", i, err)
		}
		if i < len(*v.KeyIDs) {
			id, err := strconv.ParseUint(string((*v.KeyIDs)[i]), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("runtimepolicy: verification-keys: keyids[%d] %s is not a 32-bit keyid", i, (*v.KeyIDs)[i])
			}
			if id != 0 {
				k.KeyID = uint32(id)
			}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// FormatVerificationKeys writes keys as Keylime's ImaKeyring.to_string
// does: {"pubkeys": [...], "keyids": [...]}, the DER SubjectPublicKeyInfo
// in base64. The ring is keyed by keyid, as Keylime's: a second key with
// a keyid already present replaces the first in its place.
func FormatVerificationKeys(keys []digsig.Key) (string, error) {
	var ders [][]byte
	var ids []uint32
	for _, k := range keys {
		der, err := digsig.MarshalPKIX(k.Public)
		if err != nil {
			return "", err
		}
		i := slices.Index(ids, k.KeyID)
		if i >= 0 {
			ders[i] = der
			continue
		}
		ders = append(ders, der)
		ids = append(ids, k.KeyID)
	}
	b := []byte(`{"pubkeys": [`)
	for i, d := range ders {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendPyString(b, base64.StdEncoding.EncodeToString(d))
	}
	b = append(b, `], "keyids": [`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = strconv.AppendUint(b, uint64(id), 10)
	}
	return string(append(b, "]}"...)), nil
}
