package verify

import (
	"sync"

	"github.com/imago-ima/imago/ima"
)

// collector gathers the workers' failures in entry order.
type collector struct {
	err      error // the first line that could not be read
	in       chan *batch
	fails    []Failure
	count    int
	max      int
	failed   []int // indexes of failing entries
	boot     *BootAggregateResult
	violated []int
	// The list's first entry is a TPM-bypass boot aggregate (batch.bypass);
	// bypassFail indexes its failure in fails (-1 for none).
	bypass       bool
	bypassDigest ima.Digest
	bypassFail   int
}

func (c *collector) run(wg *sync.WaitGroup) {
	defer wg.Done()
	for b := range c.in {
		<-b.ready
		c.process(b)
		b.release()
	}
}

func (c *collector) process(b *batch) {
	if c.err != nil {
		return // entries after an unreadable line do not count
	}
	c.err = b.err
	last := -1
	if b.bypass {
		c.bypass, c.bypassDigest, c.bypassFail = true, b.bypassDigest, -1
	}
	for i, f := range b.fails {
		c.count++
		if len(c.fails) < c.max {
			if b.bypass && i == b.bypassFail {
				c.bypassFail = len(c.fails)
			}
			c.fails = append(c.fails, f)
		}
		if f.Entry != last {
			c.failed = append(c.failed, f.Entry)
			last = f.Entry
		}
	}
	for i := 0; i < b.n; i++ {
		if b.slots[i].viol {
			c.violated = append(c.violated, b.base+i)
		}
	}
	if c.boot == nil && b.boot != nil {
		bb := *b.boot
		c.boot = &bb
	}
}

// addDeferred merges the failures of deferred entries (in entry order)
// into the collector's, which stay in entry order: an entry's own failures
// found before (its PCR) come first; past max, failures are counted only.
// A deferred boot aggregate's verdict is taken as a batch's would be.
func (c *collector) addDeferred(fails []Failure, boot *deferredBoot) {
	if boot != nil && (c.boot == nil || boot.res.Entry < c.boot.Entry) {
		c.boot = boot.res
		c.bypass, c.bypassDigest, c.bypassFail = boot.bypass, boot.bypassDigest, -1
	}
	if len(fails) == 0 {
		return
	}
	c.count += len(fails)
	merged := make([]Failure, 0, len(c.fails)+len(fails))
	i := 0
	for k, f := range fails {
		// A bypass failure judged in a batch is the list's first entry's,
		// ahead of every deferred failure: its index stays.
		for i < len(c.fails) && c.fails[i].Entry <= f.Entry {
			merged = append(merged, c.fails[i])
			i++
		}
		if boot != nil && boot.bypass && c.boot == boot.res && k == boot.fail {
			c.bypassFail = len(merged)
		}
		merged = append(merged, f)
	}
	merged = append(merged, c.fails[i:]...)
	c.fails = merged[:min(len(merged), c.max)]
	failed := make([]int, 0, len(c.failed)+len(fails))
	j := 0
	for _, f := range fails {
		for j < len(c.failed) && c.failed[j] < f.Entry {
			failed = append(failed, c.failed[j])
			j++
		}
		if j < len(c.failed) && c.failed[j] == f.Entry {
			continue // failed already (its PCR)
		}
		if n := len(failed); n == 0 || failed[n-1] != f.Entry {
			failed = append(failed, f.Entry)
		}
	}
	c.failed = append(failed, c.failed[j:]...)
}

// dropBypassFailure removes the failure of the TPM-bypass boot aggregate
// (the list's first entry), once the TPM is found to hold the list.
func (c *collector) dropBypassFailure() {
	i := c.bypassFail
	if i < 0 {
		return
	}
	c.fails = append(c.fails[:i], c.fails[i+1:]...)
	c.count--
	c.bypassFail = -1
	for _, f := range c.fails {
		if f.Entry == 0 {
			return // the entry fails for another reason too
		}
	}
	if len(c.failed) > 0 && c.failed[0] == 0 {
		c.failed = c.failed[1:]
	}
}
