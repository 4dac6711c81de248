// Package fleet is what a verifier replica does besides answering
// requests: it keeps its share of the fleet's leases (package lease) and
// does, under each lease it holds, the work that must happen once across
// the fleet: marking silent nodes stale, dropping expired enrollment
// challenges, pruning the history. Every such write is fenced by its lease
// (a replica that lost it writes nothing). It also checks, every interval,
// that no other replica has migrated the store to a schema this build
// cannot use, and stops the process if one has.
//
// Evidence needs no lease: any replica judges any node's round, and the
// store serialises rounds of one node across replicas (store.Round).
package fleet
