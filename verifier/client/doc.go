// Package client talks to an imago verifier's API (verifier/openapi.yaml)
// for attesters and for the CLI. Answers are bounded in size, requests in
// time; a verifier error comes back as an *Error with its HTTP status and
// failure id, and a verifier that cannot be reached as an error wrapping
// ErrUnreachable.
package client
