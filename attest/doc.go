// Package attest holds imago's remote-attestation protocol: the messages an
// attester and the verifier exchange (enrollment, challenge, evidence,
// results), their JSON forms, and strict decoders for everything that comes
// from an attester. The protocol is push, in two phases, so attesters
// behind NAT work:
//
//	enrollment   POST /v1/nodes/{node}/enroll     EnrollRequest   -> EnrollChallenge
//	             POST /v1/nodes/{node}/activate   ActivateRequest -> NodeView
//	attestation  POST /v1/nodes/{node}/challenge  ChallengeRequest -> Challenge
//	             POST /v1/nodes/{node}/evidence   Evidence         -> Result
//
// The verifier's OpenAPI document (verifier/openapi.yaml) describes the
// HTTP side. Byte strings are base64 (standard, padded) in JSON.
//
// Every decoder bounds its input (MaxEvidenceSize and the per-field limits)
// before allocating, rejects unknown top-level fields, and returns a
// *FormatError naming the field; it never returns a partial value with an
// error. The package is pure.
package attest
