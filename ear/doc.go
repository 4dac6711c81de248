// Package ear issues signed attestation results for relying parties: EAT
// Attestation Results (draft-ietf-rats-ear) as JWTs (RFC 7519) signed with
// go-jose, one submodule per node ("imago-ima") with its ear.status, the
// AR4SI trustworthiness vector (draft-ietf-rats-ar4si §2.3) and the
// appraisal policy id, and imago's own failure details in "imago.failures".
//
// How a round maps to the vector:
//
//	instance-identity  2 the quote verified with the node's enrolled AK
//	                   96 it did not (signature, nonce, clock)
//	hardware           2 the AK is bound by credential activation to an EK
//	                     that chains to --ek-roots (or allowed without)
//	executables        2 every runtime entry passed the policy; 33 some did not
//	file-system        2 / 33 the same, for the measurement list as a whole
//	configuration      2 the firmware log replays to the quoted PCRs, or was
//	                     not required; 36 it does not
package ear
