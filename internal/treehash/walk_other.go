//go:build !linux

package treehash

import (
	"context"
	"io/fs"
	"path/filepath"
	"strings"
)

// walk lists the tree's files with filepath.WalkDir, one directory's files
// at a time (batches of consecutive files in one directory).
func (t *tree) walk(ctx context.Context, workers int) (*listing, error) {
	var l listing
	lo, dir := 0, ""
	walkErr := filepath.WalkDir(t.root, func(p string, d fs.DirEntry, err error) error {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel := "/" + strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(p, t.root)), "/")
		if err != nil {
			if p == t.root {
				return err
			}
			l.errs = append(l.errs, &Error{rel, err})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if p == t.root {
				return nil
			}
			if t.skip[rel] {
				return fs.SkipDir
			}
			if typ, err := fsType(p); err == nil && typ != t.sys.fsType {
				return fs.SkipDir // a mount of another filesystem type (keylime: match_rootfs)
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil // symlinks, devices, sockets, FIFOs
		}
		info, err := d.Info()
		if err != nil {
			l.errs = append(l.errs, &Error{rel, err})
			return nil
		}
		if uid, ok := ownerUID(info); ok && uid != 0 && !t.allOwners {
			return nil
		}
		if parent := rel[:strings.LastIndexByte(rel, '/')]; parent != dir {
			l.addBatches(dir, lo)
			lo, dir = len(l.jobs), parent
		}
		l.jobs = append(l.jobs, job{rel: rel, size: info.Size()})
		return nil
	})
	if walkErr != nil {
		return nil, walkErr
	}
	l.addBatches(dir, lo)
	return &l, nil
}
