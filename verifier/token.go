package verifier

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/imago-ima/imago/quote"
)

// challengeClaims is what a challenge token carries. The verifier keeps no
// record of issued challenges: the token is MACed with the store's secret
// (so any verifier process on the store honours it), names the node's
// round (so it is honoured once: the round's commit moves the node on),
// and expires.
type challengeClaims struct {
	Node      string          `json:"n"`
	Round     uint64          `json:"r"`
	Nonce     []byte          `json:"c"`
	Selection quote.Selection `json:"s"`
	Offset    uint64          `json:"o"`
	EventLog  bool            `json:"e,omitempty"`
	Expires   int64           `json:"x"` // Unix ms
}

var (
	errTokenInvalid = errors.New("challenge token invalid")
	errTokenExpired = errors.New("challenge expired")
)

const tokenDomain = "imago challenge v1\x00"

func signToken(key []byte, c *challengeClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(tokenDomain))
	m.Write(payload)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(m.Sum(nil)), nil
}

// openToken checks a token's MAC and expiry and returns its claims.
func openToken(key []byte, tok string, now time.Time) (*challengeClaims, error) {
	p, s, ok := strings.Cut(tok, ".")
	if !ok {
		return nil, errTokenInvalid
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p)
	mac, err2 := enc.DecodeString(s)
	if err1 != nil || err2 != nil {
		return nil, errTokenInvalid
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(tokenDomain))
	m.Write(payload)
	if !hmac.Equal(m.Sum(nil), mac) {
		return nil, errTokenInvalid
	}
	var c challengeClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errTokenInvalid
	}
	if now.UnixMilli() > c.Expires {
		return nil, errTokenExpired
	}
	return &c, nil
}
