// Package verifier is imago's verifier service: REST/JSON over TLS for
// attesters (enrollment, challenges, evidence) and for operators (nodes),
// with every round judged by package appraise and stored by package store.
// The API is described in openapi.yaml (served at /openapi.yaml).
//
// One lifecycle: Run serves until its context ends or a component dies
// (the listener, the background sweeper), then shuts everything down and
// returns; the command exits non-zero on an error so the service manager
// restarts it.
//
// Every endpoint bounds its request body and its time. Operator endpoints
// (node add, list, show, remove) take a bearer token when one is
// configured, and are otherwise served to loopback clients only.
package verifier
