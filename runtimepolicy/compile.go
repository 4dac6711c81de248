package runtimepolicy

import (
	"io"

	"github.com/imago-ima/imago/ima/digsig"
)

// Compiled is a runtime policy ready to judge entries: the digests of
// paths, keyrings and buffers in compact tables, the exclude list
// compiled, the ignored keyrings and the verification keys parsed. It is
// immutable and safe for concurrent use.
type Compiled struct {
	Meta    Meta
	Release int
	IMA     IMA
	// Signature is the envelope signature that verified the policy (nil
	// for an unsigned policy).
	Signature *Signature

	tables   [3]*table
	excludes *Excludes
	ignored  map[string]bool
	keys     []digsig.Key
}

// compileSink feeds the three tables, each through a builder.
type compileSink struct{ b [3]*builder }

func (c *compileSink) room(k mapKind, n int) ([]byte, error) { return c.b[k].room(n) }
func (c *compileSink) add(k mapKind, n int)                  { c.b[k].add(n) }

// Compile reads a runtime policy (or a DSSE envelope, verified with
// opts.Key) straight into a Compiled policy, without holding its text: the
// memory it keeps is about the names and binary digests it lists.
func Compile(r io.Reader, opts Options) (*Compiled, error) {
	tables := [3]*table{newTable(), newTable(), newTable()}
	if opts.SizeHint > 0 {
		tables[kindDigests].sizeFor(int(min(opts.SizeHint/100, 1<<28)))
	}
	s := &compileSink{}
	for k, t := range tables {
		s.b[k] = newBuilder(t)
	}
	h, sig, err := read(r, s, opts)
	for _, b := range s.b {
		b.finish()
	}
	if err != nil {
		return nil, err
	}
	c := &Compiled{Meta: h.meta, Release: h.release, IMA: h.ima, Signature: sig, tables: tables}
	if err := c.finish(h.excludes, h.verificationKeys); err != nil {
		return nil, err
	}
	return c, nil
}

// Pending is a runtime policy being compiled on a goroutine of its own
// (CompileAsync), so that a caller can read the measurement list while the
// policy is read.
type Pending struct {
	done chan struct{}
	c    *Compiled
	err  error
}

// CompileAsync starts Compile(r, opts) on a goroutine of its own, which
// reads r to its end or its first error; Wait returns the result. The
// goroutine ends with the compile (it never waits for the caller).
func CompileAsync(r io.Reader, opts Options) *Pending {
	p := &Pending{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.c, p.err = Compile(r, opts)
	}()
	return p
}

// Done is closed once the compile has ended.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait waits for the compile and returns what Compile returned.
func (p *Pending) Wait() (*Compiled, error) {
	<-p.done
	return p.c, p.err
}

// Compile compiles an edited policy.
func (p *Policy) Compile() (*Compiled, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	c := &Compiled{Meta: p.Meta, Release: p.Release, IMA: p.IMA, Signature: p.Signature}
	for k, m := range [3]*DigestMap{p.Digests, p.Keyrings, p.IMABuf} {
		t := newTable()
		c.tables[k] = t
		if m == nil {
			continue
		}
		for _, n := range m.names {
			t.begin([]byte(n))
			for _, h := range m.m[n] {
				t.digestHex([]byte(h))
			}
			if err := t.end(); err != nil {
				return nil, err
			}
		}
	}
	if err := c.finish(p.Excludes, p.VerificationKeys); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Compiled) finish(excludes []string, vkeys string) error {
	x, err := CompileExcludes(excludes)
	if err != nil {
		return err
	}
	c.excludes = x
	if c.keys, err = ParseVerificationKeys(vkeys); err != nil {
		return err
	}
	c.ignored = make(map[string]bool, len(c.IMA.IgnoredKeyrings))
	for _, k := range c.IMA.IgnoredKeyrings {
		c.ignored[k] = true
	}
	return nil
}

// Digests returns the digests the policy lists for a path.
func (c *Compiled) Digests(path []byte) (Digests, bool) { return c.tables[kindDigests].lookup(path) }

// Keyring returns the digests of the keys the policy allows on a keyring.
func (c *Compiled) Keyring(name []byte) (Digests, bool) { return c.tables[kindKeyrings].lookup(name) }

// IMABuf returns the digests the policy allows for an ima-buf event name.
func (c *Compiled) IMABuf(name []byte) (Digests, bool) { return c.tables[kindIMABuf].lookup(name) }

// Excluded reports whether a path (or name) matches the exclude list.
func (c *Compiled) Excluded(path []byte) bool { return c.excludes.Match(path) }

// Excludes returns the exclude patterns.
func (c *Compiled) Excludes() []string { return c.excludes.Patterns() }

// KeyringIgnored reports whether ima-buf keys on this keyring are neither
// checked nor learned ("*" in ignored_keyrings ignores all).
func (c *Compiled) KeyringIgnored(name []byte) bool {
	return c.ignored["*"] || c.ignored[string(name)]
}

// VerificationKeys returns the keys of verification-keys, each with its
// keyid.
func (c *Compiled) VerificationKeys() []digsig.Key { return c.keys }

// Counts returns how many paths, keyrings and ima-buf names are listed.
func (c *Compiled) Counts() (paths, keyrings, bufs int) {
	return c.tables[kindDigests].Len(), c.tables[kindKeyrings].Len(), c.tables[kindIMABuf].Len()
}

// BootAggregates returns the digests listed for boot_aggregate, in hex.
func (c *Compiled) BootAggregates() []string {
	d, _ := c.Digests([]byte("boot_aggregate"))
	return d.Hex()
}

// HexDigests is Digests with the digests in hex, for reports.
func (c *Compiled) HexDigests(path string) ([]string, bool) {
	d, ok := c.Digests([]byte(path))
	if !ok {
		return nil, false
	}
	return d.Hex(), true
}

// WarmPaths prepares the lookups of many paths in Digests, for a caller
// about to judge a batch of entries: it computes the hash of each path into
// hashes (for DigestsHashed; nil paths are skipped) and reads what the
// lookups will read, overlapping the cache misses that lookups one at a
// time would wait for in turn. It returns a byte to be discarded.
func (c *Compiled) WarmPaths(paths [][]byte, hashes []uint64) byte {
	return c.tables[kindDigests].warm(paths, hashes)
}

// DigestsHashed is Digests for a path whose hash WarmPaths computed.
func (c *Compiled) DigestsHashed(path []byte, hash uint64) (Digests, bool) {
	return c.tables[kindDigests].lookupHashed(path, hash)
}
