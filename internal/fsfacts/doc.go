// Package fsfacts reads, at the edge, the facts an IMA policy rule's
// conditions test (ima-spec.md §8.3) for one file opened by one process:
// the filesystem's magic, uuid and type name (fsmagic=, fsuuid=, fsname=),
// the file's owner and group (fowner=, fgroup=) and LSM label (obj_*=), the
// process's credentials (uid=, euid=, gid=, egid=) and label (subj_*=), and
// the access the open asked for (mask=), which fanotify does not report and
// which is recovered from the blocked opener's /proc/<tid>/syscall.
//
// The parsers (ParseStatus, ParseSyscall, OpenAccess) are pure and fuzzed;
// the rest (facts_linux.go) is thin system-call glue.
package fsfacts
