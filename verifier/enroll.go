package verifier

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"

	"github.com/google/go-tpm/tpm2"

	"github.com/imago-ima/imago/attest"
	"github.com/imago-ima/imago/enroll"
	"github.com/imago-ima/imago/quote"
	"github.com/imago-ima/imago/store"
)

// secretSize is the size of a credential's secret.
const secretSize = 32

// ekID is the sha256 of an EK's public area.
func ekID(p *tpm2.TPMTPublic) string {
	sum := sha256.Sum256(tpm2.Marshal(*p))
	return hex.EncodeToString(sum[:])
}

// handleEnroll checks the EK (certificate chain to the roots, or the
// node's opt-in), the AK (a restricted signing key bound to its TPM), and
// that the EK is not another node's, then answers with a credential bound
// to the AK's name.
func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request, body []byte) error {
	name, req, err := nodeRequest(r, body, attest.DecodeEnrollRequest)
	if err != nil {
		return err
	}
	n, err := s.getNode(r.Context(), name)
	if err != nil {
		return err
	}
	ek, err := quote.ParsePublic(req.EKPublic)
	if err != nil {
		return apiErr(http.StatusBadRequest, "enroll.ek", "EK public area: %v", err)
	}
	ak, err := quote.ParsePublic(req.AKPublic)
	if err != nil {
		return apiErr(http.StatusBadRequest, "enroll.ak", "AK public area: %v", err)
	}
	if err := enroll.CheckAK(ak); err != nil {
		return apiErr(http.StatusForbidden, "enroll.ak", "%v", err)
	}
	switch {
	case len(req.EKCertificate) > 0 && s.cfg.EKRoots.Len() == 0 && n.AllowNoCert:
		// No roots to check it against, and the node is allowed an
		// uncertified EK: trusted on first use, as one without a certificate.
	case len(req.EKCertificate) > 0:
		if _, err := s.cfg.EKRoots.CheckEKCertificate(ek, req.EKCertificate, req.EKChain, x509.VerifyOptions{CurrentTime: s.now()}); err != nil {
			s.log.Warn("enrollment refused: EK certificate", "node", name, "err", err)
			return apiErr(http.StatusForbidden, "enroll.ek_certificate", "%v", err)
		}
	case !n.AllowNoCert:
		return apiErr(http.StatusForbidden, "enroll.no_ek_certificate",
			"the TPM sent no EK certificate; add the node with --allow-ek-without-cert to enrol it anyway")
	}
	id := ekID(ek)
	if n.Enrolled() && n.EKID != id {
		s.log.Warn("enrollment refused: another TPM claims the node", "node", name, "ek", id, "enrolled_ek", n.EKID)
		return apiErr(http.StatusConflict, "enroll.ek_changed",
			"node %s is enrolled with another TPM (EK %s); remove and add the node to enrol a new TPM", name, n.EKID[:16])
	}
	akName, err := enroll.Name(ak)
	if err != nil {
		return apiErr(http.StatusBadRequest, "enroll.ak", "%v", err)
	}
	secret := make([]byte, secretSize)
	rand.Read(secret)
	cred, err := enroll.NewCredential(rand.Reader, ek, akName, secret)
	if err != nil {
		return apiErr(http.StatusBadRequest, "enroll.ek", "%v", err)
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	sum := sha256.Sum256(secret)
	expires := s.now().Add(s.cfg.EnrollTTL)
	p := &store.Pending{
		EKID: id, EKPublic: req.EKPublic, EKCert: req.EKCertificate, AKPublic: req.AKPublic,
		SecretHash: sum[:], Token: base64.RawURLEncoding.EncodeToString(tok), Expires: expires.UnixMilli(),
	}
	if err := s.st.BeginEnroll(r.Context(), name, n.Round, p); err != nil {
		switch {
		case errors.Is(err, store.ErrEKInUse):
			s.log.Warn("enrollment refused: EK enrolled under another node", "node", name, "ek", id, "err", err)
			return apiErr(http.StatusConflict, "enroll.ek_in_use", "this TPM's EK is enrolled under another node")
		case errors.Is(err, store.ErrConflict):
			return apiErr(http.StatusConflict, "round.conflict", "the node changed meanwhile; retry")
		}
		return err
	}
	writeJSON(w, http.StatusOK, attest.EnrollChallenge{Credential: *cred, Token: p.Token, Expires: rfc3339(expires)})
	return nil
}

// handleActivate completes an enrollment when the attester returns the
// credential's secret.
func (s *Server) handleActivate(w http.ResponseWriter, r *http.Request, body []byte) error {
	name, req, err := nodeRequest(r, body, attest.DecodeActivateRequest)
	if err != nil {
		return err
	}
	n, err := s.getNode(r.Context(), name)
	if err != nil {
		return err
	}
	p := n.Pending
	if p == nil || subtle.ConstantTimeCompare([]byte(p.Token), []byte(req.Token)) != 1 {
		return apiErr(http.StatusConflict, "enroll.no_pending", "no such enrollment in progress; enrol again")
	}
	if s.now().UnixMilli() > p.Expires {
		return apiErr(http.StatusGone, "enroll.expired", "the enrollment challenge expired; enrol again")
	}
	sum := sha256.Sum256(req.Secret)
	if subtle.ConstantTimeCompare(sum[:], p.SecretHash) != 1 {
		s.log.Warn("enrollment refused: wrong credential secret", "node", name)
		return apiErr(http.StatusForbidden, "enroll.activation", "the secret does not match: the AK is not in the TPM of this EK")
	}
	sameKeys := n.Enrolled() && n.EKID == p.EKID && bytes.Equal(n.AKPublic, p.AKPublic)
	if err := s.st.CompleteEnroll(r.Context(), name, p.Token, sameKeys); err != nil {
		switch {
		case errors.Is(err, store.ErrEKInUse):
			return apiErr(http.StatusConflict, "enroll.ek_in_use", "this TPM's EK is enrolled under another node")
		case errors.Is(err, store.ErrConflict):
			return apiErr(http.StatusConflict, "enroll.no_pending", "the enrollment changed meanwhile; enrol again")
		}
		return err
	}
	s.challenges.forget(name) // the node's round moved on
	if !sameKeys {
		s.log.Info("node enrolled", "node", name, "ek", p.EKID)
	}
	n, err = s.getNode(r.Context(), name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.view(r.Context(), n, nil))
	return nil
}
