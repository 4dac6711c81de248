package agent

import (
	"context"
	"crypto/sha1"
	"errors"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/imago-ima/imago/ima"
)

// hashBufs holds the read buffers of hashing.
var hashBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// errHashDeadline: the hash time limit (Config.HashTimeout) passed.
var errHashDeadline = errors.New("agent: hash time limit reached")

// hashReader hashes r with ev.Alg into ev.Digest and, when wantD (a legacy
// d field), with SHA-1 into ev.D in the same pass (ima-spec.md §3.3: the
// file digest itself when it is SHA-1, else a SHA-1 re-hash). Between reads
// it stops when ctx is done (ctx.Err()) or deadline (if not zero) has
// passed (errHashDeadline).
func hashReader(ctx context.Context, r io.Reader, ev *event, wantD bool, deadline time.Time) error {
	h := ev.Alg.New()
	var h1 hash.Hash
	if wantD && ev.Alg != ima.HashSHA1 {
		h1 = sha1.New()
	}
	bp := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(bp)
	buf := *bp
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !deadline.IsZero() && time.Now().After(deadline) {
			return errHashDeadline
		}
		n, err := r.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			if h1 != nil {
				h1.Write(buf[:n])
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	ev.Digest = h.Sum(nil)
	switch {
	case h1 != nil:
		ev.D = h1.Sum(nil)
	case wantD:
		ev.D = ev.Digest
	}
	return nil
}
