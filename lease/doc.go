// Package lease shares work that must happen once among the replicas of
// a verifier fleet (marking nodes stale, expiring enrollment challenges,
// pruning history): each piece of work is a named lease, held by one
// replica at a time, until an expiry the database's clock keeps.
//
// # PostgreSQL
//
// Leases are rows of the store's leases table. A replica claims free,
// expired or orphaned leases with UPDATE ... WHERE name IN (SELECT ...
// FOR UPDATE SKIP LOCKED), so two replicas claiming at once never wait on
// or take the same row; it renews what it holds every third of the lease
// period and keeps no more than its fair share (the leases divided among
// the live replicas), releasing the rest.
//
// Every write made under a lease is fenced: Lease.Check runs first in the
// write's own transaction and locks the lease row (FOR SHARE) only if this
// owner still holds it with the same fencing token, unexpired. The token
// grows at every change of owner, so a replica that was paused or cut off
// past its expiry, whose lease another replica has taken, cannot write:
// its check finds another owner or token, and its transaction rolls back.
// While a write holds the row, no one can take the lease from under it.
//
// A replica is live while its own database session holds an advisory
// lock on its name; the same session LISTENs for wake-ups. A replica
// killed outright loses that session at once, and its leases can be taken
// without waiting for them to expire; a replica that stalls keeps its
// session and loses its leases when they expire. NOTIFY only wakes other
// replicas sooner (a lease was released, a replica joined): the truth is
// the table, polled every third of the lease period.
//
// # SQLite
//
// A SQLite store has one process: Local holds every lease, always, and
// its fence is trivially true.
package lease
