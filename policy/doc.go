// Package policy owns the IMA policy language (ima-spec.md §8): the parser for
// the rules the kernel accepts in <securityfs>/ima/policy, the kernel's
// validity checks, the read-back form (CONFIG_IMA_READ_POLICY), the built-in
// policies of the ima_policy= boot parameter, and the evaluation of a rule set
// against the facts of one event (first match per action pair, §8.5).
//
// The package is pure: it reads no files and asks the system nothing. The facts
// an Event carries (filesystem magic and uuid, credentials, LSM labels) are
// read at the edge by the caller.
//
// # Which kernel
//
// The grammar, checks and read-back follow mainline
// security/integrity/ima/ima_policy.c as of the 7.1 series (the
// IMA_SIGV3_REQUIRED series: appraise_type=sigv3 allowed for regular files,
// appraise_flag= accepted and ignored, imasig implying the blacklist check).
// Where ima-spec.md §8 and the kernel disagree, the kernel wins; each place is
// marked "kernel wins" in the source. Build options that change the grammar
// are taken as enabled: CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS (KEY_CHECK,
// keyrings=) and CONFIG_IMA_APPRAISE_MODSIG (imasig|modsig). Every hash
// algorithm name the kernel knows is accepted in appraise_algos=; the kernel
// also requires it to be available in its crypto API, which only the running
// kernel can tell.
//
// # What userspace can see
//
// A fanotify agent sees opens (FAN_OPEN_PERM, func=FILE_CHECK) and execs
// (FAN_OPEN_EXEC_PERM, func=BPRM_CHECK). Rules for any other hook are accepted,
// as the kernel accepts them, and each produces one Warning.
package policy
