#!/bin/sh
# bench/gate.sh: what the fanotify gate adds to an exec, in one run.
#
# A small static binary is copied to three tmpfs mounts: "plain" (not
# watched), "gate" (watched by `imago agent --watch`) and "ref" (watched by
# bench/fanresp.c, a C loop that answers FAN_ALLOW to everything: the
# kernel's fanotify round trip, the floor any gate pays). bench/gatebench.c
# times vfork+exec+wait per iteration, alternating between the programs so
# that both sides of a comparison see the same load:
#   - warm: N execs (default 10000) each of gate and plain, after the one
#     measurement: every gated exec is a cached decision, made by the kernel
#     (imago's fanotify ignore mark on the measured inode: the exec is not
#     reported at all) or, with --gate-kernel-cache=false, by imago's cache
#     on its reading thread;
#   - first: M distinct copies (default 200; different trailing bytes), each
#     executed once through the gate, alternating with plain: hash,
#     append+fdatasync, extend (none with TPM=none), exports;
#   - tcb-like: a policy with FILE_CHECK rules too, so each exec also raises
#     FAN_OPEN_PERM (its own open: flags from /proc/<tid>/syscall, uid from
#     /proc/<tid>/status) and close events are tracked; no open of the
#     file can be ruled out of measurement, so nothing is left to the
#     kernel;
#   - the built-in tcb policy, whose `dont_measure fsmagic=TMPFS
#     func=FILE_CHECK` rule means no open of a tmpfs file is ever measured:
#     with the kernel cache (ignore marks for the exec, its open and its
#     close) and without it (--gate-kernel-cache=false, every event
#     answered by imago).
# Added latency = p50 (p99) of the gated side minus that of plain.
#
# Needs root (fanotify permission events), gcc with a static libc, go.
# Environment: N, M, TPM (the agent's --tpm: none (default, bypass, no
# extend) or swtpm (one is started)).
set -eu
N=${N:-10000}
M=${M:-200}
TPM=${TPM:-none}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d /tmp/imago-gatebench.XXXXXX)
agentpid=
refpid=
swtpmpid=
cleanup() {
	for p in $agentpid $refpid $swtpmpid; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for m in plain gate ref; do umount "$work/$m" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "gate.sh: needs root" >&2; exit 2; }
(cd "$root" && CGO_ENABLED=0 go build -o "$work/imago" ./cmd/imago)
gcc -O2 -o "$work/gatebench" "$here/gatebench.c"
gcc -O2 -o "$work/fanresp" "$here/fanresp.c"
printf 'int main(void){return 0;}\n' > "$work/true.c"
gcc -O2 -static -o "$work/true" "$work/true.c"
for m in plain gate ref; do
	mkdir -p "$work/$m"
	mount -t tmpfs -o size=512m tmpfs "$work/$m"
	cp "$work/true" "$work/$m/true"
done
firsts=
i=0
while [ "$i" -lt "$M" ]; do
	cp "$work/true" "$work/gate/first$i"
	printf 'imago-bench-%d' "$i" >> "$work/gate/first$i" # distinct content
	firsts="$firsts first:$work/gate/first$i plain:$work/plain/true"
	i=$((i + 1))
done
size=$(stat -c %s "$work/true")

tpmuri=$TPM
if [ "$TPM" = swtpm ]; then
	mkdir -p "$work/tpm"
	swtpm_setup --tpm2 --tpmstate "$work/tpm" --pcr-banks sha1,sha256 >/dev/null
	port=$((20000 + $$ % 20000))
	swtpm socket --tpm2 --tpmstate dir="$work/tpm" --server type=tcp,port=$port \
		--ctrl type=tcp,port=$((port + 1)) --flags not-need-init,startup-clear &
	swtpmpid=$!
	sleep 0.5
	tpmuri=tcp://127.0.0.1:$port
fi

bench() { "$work/gatebench" "$@"; }
field() { # LINE-LABEL KEY OUTPUT
	echo "$3" | awk -v l="$1" -v k="$2" '$1 == l { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }'
}
added() { # OUTPUT LABEL
	awk -v a="$(field "$2" p50 "$1")" -v b="$(field plain p50 "$1")" \
	    -v c="$(field "$2" p99 "$1")" -v d="$(field plain p99 "$1")" \
	    'BEGIN { printf "p50 %+.1f us, p99 %+.1f us", a - b, c - d }'
}

start_agent() { # POLICY-FILE [FLAGS]
	rm -rf "$work/state" "$work/run"
	pol=$1; shift
	"$work/imago" agent --tpm "$tpmuri" --pcr 11 --state-dir "$work/state" --runtime-dir "$work/run" \
		--socket "$work/agent.sock" --watch "$work/gate" --policy "$pol" --log-level info "$@" 2>"$work/agent.log" &
	agentpid=$!
	n=0
	until "$work/imago" status --socket "$work/agent.sock" >/dev/null 2>&1; do
		n=$((n + 1)); [ "$n" -lt 200 ] || { cat "$work/agent.log"; exit 1; }
		sleep 0.05
	done
}
stop_agent() {
	kill "$agentpid"; wait "$agentpid" 2>/dev/null || true; agentpid=
	# the gate's own time for a cached decision, from its stop line
	fastus=$(sed -n 's/.*gate: stopped.* fast=\([0-9]*\) .*fast_decision_us=\([0-9.]*\).*/\2 us over \1 events/p' "$work/agent.log")
}

echo "imago gate bench: ${size}-byte static binary on tmpfs, N=$N, M=$M, tpm=$TPM, $(nproc) cpus, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
bench 400 plain:"$work/plain/true" >/dev/null # warm up

"$work/fanresp" "$work/ref" &
refpid=$!
sleep 0.2
out=$(bench $((2 * N)) ref:"$work/ref/true" plain:"$work/plain/true")
kill "$refpid"; wait "$refpid" 2>/dev/null || true; refpid=
echo "$out" | sed 's/^/  /'
echo "fanotify round trip (C reference):        $(added "$out" ref)"

printf 'measure func=BPRM_CHECK\n' > "$work/exec.policy"
start_agent "$work/exec.policy"
bench 1 gate:"$work/gate/true" >/dev/null # the one measurement
out=$(bench $((2 * N)) gate:"$work/gate/true" plain:"$work/plain/true")
echo "$out" | sed 's/^/  /'
echo "imago gate, exec policy, cached by the kernel (ignore mark): $(added "$out" gate)   (target: p50 < 20 us)"
stop_agent

start_agent "$work/exec.policy" --gate-kernel-cache=false
bench 1 gate:"$work/gate/true" >/dev/null
out=$(bench $((2 * N)) gate:"$work/gate/true" plain:"$work/plain/true")
echo "$out" | sed 's/^/  /'
echo "imago gate, exec policy, cached by imago (every exec reported): $(added "$out" gate)"
out=$(bench $((2 * M)) $firsts)
echo "$out" | sed 's/^/  /'
echo "imago gate, first measurement of ${size} B: $(added "$out" first)"
stop_agent
echo "imago's own time per cached decision (read to answer, on its reading thread): $fastus"

printf 'measure func=BPRM_CHECK mask=MAY_EXEC\nmeasure func=FILE_CHECK mask=MAY_READ uid=0\n' > "$work/tcb.policy"
start_agent "$work/tcb.policy"
bench 1 gate:"$work/gate/true" >/dev/null
out=$(bench $((2 * N)) gate:"$work/gate/true" plain:"$work/plain/true")
echo "$out" | sed 's/^/  /'
echo "imago gate, tcb-like policy, cached:      $(added "$out" gate)"
stop_agent
echo "imago's own time per cached decision, tcb-like (exec: 2 events): $fastus"

start_agent tcb
bench 1 gate:"$work/gate/true" >/dev/null
out=$(bench $((2 * N)) gate:"$work/gate/true" plain:"$work/plain/true")
echo "$out" | sed 's/^/  /'
echo "imago gate, built-in tcb on tmpfs, cached by the kernel (ignore marks): $(added "$out" gate)"
stop_agent

start_agent tcb --gate-kernel-cache=false
bench 1 gate:"$work/gate/true" >/dev/null
out=$(bench $((2 * N)) gate:"$work/gate/true" plain:"$work/plain/true")
echo "$out" | sed 's/^/  /'
echo "imago gate, built-in tcb on tmpfs, --gate-kernel-cache=false: $(added "$out" gate)"
stop_agent
echo "imago's own time per cached decision, tcb without the kernel cache: $fastus"
