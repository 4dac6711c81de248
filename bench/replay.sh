#!/usr/bin/env bash
# bench/replay.sh: `imago log check` against `evmctl ima_measurement` on a
# 1,000,000-entry ima-ng list made by bench/genlist (internal/genlist).
#
# usage: bench/replay.sh [RUNS]        (default 5 runs of each tool)
# env:   ENTRIES=1000000  CACHE=${TMPDIR:-/tmp}/imago-bench-replay-genlist
#        IMAGO=prebuilt imago binary (else built here)
#
# Prints each tool's median wall time, the ratio evmctl/imago, and imago's
# peak RSS. Exits 1 if imago's verdict is not "matched" or differs from
# evmctl's. Needs Go, evmctl (ima-evm-utils) and GNU time.
set -euo pipefail

runs=${1:-5}
entries=${ENTRIES:-1000000}
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${CACHE:-${TMPDIR:-/tmp}/imago-bench-replay-genlist}
command -v evmctl >/dev/null || { echo "replay.sh: evmctl not installed (apt-get install ima-evm-utils)" >&2; exit 2; }
if [[ ! -x /usr/bin/time ]]; then
	echo "replay.sh: installing GNU time" >&2
	apt-get install -y time >/dev/null 2>&1 || { echo "replay.sh: /usr/bin/time missing" >&2; exit 2; }
fi

list=$cache/$entries
if [[ ! -s $list/binary_runtime_measurements || ! -s $list/pcrs-sha256.txt ]]; then
	echo "generating $entries entries into $list ..." >&2
	(cd "$here" && go run ./bench/genlist "$entries" "$list") >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
imago=${IMAGO:-}
if [[ -z $imago ]]; then
	(cd "$here" && go build -o "$work/imago" ./cmd/imago)
	imago=$work/imago
fi

cd "$list"
evm=(evmctl ima_measurement --pcrs sha1,pcrs-sha1.txt --pcrs sha256,pcrs-sha256.txt binary_runtime_measurements)
img=("$imago" log check binary_runtime_measurements --pcrs sha1,pcrs-sha1.txt --pcrs sha256,pcrs-sha256.txt)

# warm the page cache, check both verdicts
"${evm[@]}" >/dev/null 2>&1 && evm_rc=0 || evm_rc=$?
"${img[@]}" >"$work/imago.out" 2>&1 && img_rc=0 || img_rc=$?
if [[ $img_rc -ne 0 || $evm_rc -ne 0 ]]; then
	echo "replay.sh: verdicts: evmctl exit $evm_rc, imago exit $img_rc" >&2
	cat "$work/imago.out" >&2
	exit 1
fi

# measure: GNU time prints "wall_seconds max_rss_kb"
measure() { # name cmd...
	local name=$1; shift
	for ((i = 0; i < runs; i++)); do
		/usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>&1 || true
		cat "$work/t" >>"$work/$name.times"
	done
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

: >"$work/evmctl.times"
: >"$work/imago.times"
# interleave the runs so that machine load hits both alike
for ((r = 0; r < runs; r++)); do
	runs_save=$runs; runs=1
	measure evmctl "${evm[@]}"
	measure imago "${img[@]}"
	runs=$runs_save
done

evm_med=$(cut -d' ' -f1 "$work/evmctl.times" | median)
img_med=$(cut -d' ' -f1 "$work/imago.times" | median)
img_rss=$(cut -d' ' -f2 "$work/imago.times" | sort -n | tail -1)
ratio=$(awk -v a="$evm_med" -v b="$img_med" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }')

echo "list:            $list/binary_runtime_measurements ($entries entries, $(stat -c %s binary_runtime_measurements) bytes)"
echo "runs:            $runs each, interleaved; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "evmctl median:   ${evm_med} s   ($(tr '\n' ' ' <"$work/evmctl.times" | awk '{for(i=1;i<=NF;i+=2) printf "%s ", $i}'))"
echo "imago median:    ${img_med} s   ($(tr '\n' ' ' <"$work/imago.times" | awk '{for(i=1;i<=NF;i+=2) printf "%s ", $i}'))"
echo "ratio:           ${ratio}x (evmctl / imago)"
echo "imago peak RSS:  $((img_rss / 1024)) MiB (${img_rss} KiB)"
