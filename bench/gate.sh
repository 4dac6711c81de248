#!/bin/sh
# bench/gate.sh: what the fanotify gate adds to an exec. In one run: N execs
# (default 10000) of a small static binary on a tmpfs, without the gate and
# with it (warm cache: the file is measured once, then every exec is a cached
# decision), and the cost of a first measurement (M distinct copies, each
# executed once: hash, append+fdatasync, extend, exports). Latency is
# fork(vfork)+exec+wait per iteration, timed by bench/gatebench.c.
#
# Needs root (fanotify permission events), gcc with a static libc, go.
# Environment: N (execs, 10000), M (first measurements, 200), TPM (the
# agent's --tpm, default none: bypass, no extend; "swtpm" starts one).
set -eu
N=${N:-10000}
M=${M:-200}
TPM=${TPM:-none}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
work=$(mktemp -d /tmp/imago-gatebench.XXXXXX)
mnt=$work/mnt
agentpid=
swtpmpid=
cleanup() {
	[ -n "$agentpid" ] && kill "$agentpid" 2>/dev/null && wait "$agentpid" 2>/dev/null || true
	[ -n "$swtpmpid" ] && kill "$swtpmpid" 2>/dev/null || true
	umount "$mnt" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

[ "$(id -u)" = 0 ] || { echo "gate.sh: needs root" >&2; exit 2; }
(cd "$root" && CGO_ENABLED=0 go build -o "$work/imago" ./cmd/imago)
gcc -O2 -o "$work/gatebench" "$here/gatebench.c"
printf 'int main(void){return 0;}\n' > "$work/true.c"
gcc -O2 -static -o "$work/true" "$work/true.c"
mkdir -p "$mnt"
mount -t tmpfs -o size=512m tmpfs "$mnt"
cp "$work/true" "$mnt/true"
i=0
firsts=
while [ "$i" -lt "$M" ]; do
	# distinct content: a trailing byte string after the ELF image
	cp "$work/true" "$mnt/first$i"
	printf 'imago-bench-%d' "$i" >> "$mnt/first$i"
	firsts="$firsts $mnt/first$i"
	i=$((i + 1))
done
size=$(stat -c %s "$mnt/true")

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

run() { "$work/gatebench" "$@"; }
p50() { echo "$1" | sed -n 's/.*p50=\([0-9.]*\).*/\1/p'; }
p99() { echo "$1" | sed -n 's/.*p99=\([0-9.]*\).*/\1/p'; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }

start_agent() { # policy file
	rm -rf "$work/state" "$work/run"
	"$work/imago" agent --tpm "$tpmuri" --pcr 11 --state-dir "$work/state" --runtime-dir "$work/run" \
		--socket "$work/agent.sock" --watch "$mnt" --policy "$1" --log-level warn 2>"$work/agent.log" &
	agentpid=$!
	n=0
	until "$work/imago" status --socket "$work/agent.sock" >/dev/null 2>&1; do
		n=$((n + 1)); [ "$n" -lt 200 ] || { cat "$work/agent.log"; exit 1; }
		sleep 0.05
	done
}
stop_agent() { kill "$agentpid"; wait "$agentpid" 2>/dev/null || true; agentpid=; }

echo "imago gate bench: $N execs of a ${size}-byte static binary on tmpfs; $M first measurements; tpm=$TPM; $(nproc) cpus; $(uname -r)"
run 200 "$mnt/true" >/dev/null # warm up
base=$(run "$N" "$mnt/true")
echo "no gate:                 $base"

printf 'measure func=BPRM_CHECK\n' > "$work/exec.policy"
start_agent "$work/exec.policy"
run 1 "$mnt/true" >/dev/null # the one measurement
cached=$(run "$N" "$mnt/true")
echo "gate, exec policy, warm: $cached"
first=$(run "$M" $firsts)
echo "gate, first measurement: $first"
stop_agent
base2=$(run "$N" "$mnt/true")
echo "no gate (again):         $base2"

# A tcb-like policy: FILE_CHECK rules too, so every exec also raises
# FAN_OPEN_PERM (its own open) and the close events are tracked; uid=
# conditions read /proc/<tid>/status.
printf 'measure func=BPRM_CHECK mask=MAY_EXEC\nmeasure func=FILE_CHECK mask=MAY_READ uid=0\n' > "$work/tcb.policy"
start_agent "$work/tcb.policy"
run 1 "$mnt/true" >/dev/null
cachedTCB=$(run "$N" "$mnt/true")
echo "gate, tcb-like, warm:    $cachedTCB"
stop_agent

b50=$(awk -v a="$(p50 "$base")" -v b="$(p50 "$base2")" 'BEGIN { printf "%.1f", (a < b) ? a : b }')
b99=$(awk -v a="$(p99 "$base")" -v b="$(p99 "$base2")" 'BEGIN { printf "%.1f", (a < b) ? a : b }')
echo
echo "added per exec, exec policy, cached:  p50 $(sub "$(p50 "$cached")" "$b50") us, p99 $(sub "$(p99 "$cached")" "$b99") us (target: p50 < 20 us)"
echo "added per exec, tcb-like, cached:     p50 $(sub "$(p50 "$cachedTCB")" "$b50") us, p99 $(sub "$(p99 "$cachedTCB")" "$b99") us"
echo "first measurement (${size}+ bytes):   p50 $(sub "$(p50 "$first")" "$b50") us, p99 $(sub "$(p99 "$first")" "$b99") us added"
