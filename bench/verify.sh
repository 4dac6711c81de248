#!/usr/bin/env bash
# bench/verify.sh: imago verify and runtime-policy create against Keylime,
# side by side on the same files, in one run.
#
# 1. A 1,000,000-entry ascii ima-ng list and a runtime policy holding all its
#    digests (made by bench/verifygen, our own code): `imago verify` checking
#    two banks (sha1 and sha256 PCR 10) against Keylime's own
#    process_measurement_list (keylime/ima/ima.py at 9b1f6e6a, one bank,
#    through ../shared/tools/keylime-baseline/verify_keylime.py). Prints the
#    ratio (imago: the median of RUNS runs) and imago's peak RSS against
#    the policy's size + 64 MiB.
# 2. `runtime-policy create --from-dir` on a tree of many small and a few big
#    files against `find | xargs sha256sum` and keylime-policy create runtime
#    --rootfs (run from the unpacked Keylime source), with the rate per core
#    as a percentage of Go's SHA-256 rate per core with every core hashing
#    (bench/sharate), measured right before and right after imago in the
#    same run. The tree is warm in the page cache (read once before; nothing
#    is dropped); the load averages are printed beside the figures. Right
#    after, bench/treefloor measures the ceiling on this machine: the least
#    a hasher must do (open, read or map, hash, close; no walk, no output)
#    and what reading the bytes alone costs; imago's share of it is printed.
#
# usage: bench/verify.sh            (as root: keylime-policy hashes root's files only)
# env:   PART=all|verify|create RUNS=5 (imago verify's runs; the median counts) ENTRIES=1000000 SMALL=20000 BIG=4 BIGMB=200 CACHE=${TMPDIR:-/tmp}/imago-bench-verify
#        KEYLIME=path/to/keylime-9b1f6e6a.tar.gz IMAGO=prebuilt imago binary
# Needs Go, GNU time, Debian's python3 with Keylime's packages (see
# ../shared/tools/keylime-baseline/README.md). Exits 1 if a verdict is wrong.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
entries=${ENTRIES:-1000000}
small=${SMALL:-20000}
big=${BIG:-4}
bigmb=${BIGMB:-200}
cache=${CACHE:-${TMPDIR:-/tmp}/imago-bench-verify}
tarball=${KEYLIME:-$here/../shared/tools/keylime-baseline/keylime-9b1f6e6a.tar.gz}
runner=$(dirname "$tarball")/verify_keylime.py
[[ -f $tarball && -f $runner ]] || { echo "verify.sh: Keylime baseline not found ($tarball)" >&2; exit 2; }
[[ -x /usr/bin/python3 ]] || { echo "verify.sh: /usr/bin/python3 missing" >&2; exit 2; }
if [[ ! -x /usr/bin/time ]]; then
	apt-get install -y time >/dev/null 2>&1 || { echo "verify.sh: GNU time (/usr/bin/time) missing" >&2; exit 2; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
imago=${IMAGO:-}
if [[ -z $imago ]]; then
	(cd "$here" && go build -o "$work/imago" ./cmd/imago)
	imago=$work/imago
fi
tar -xzf "$tarball" -C "$work"
kl=$work

# measure NAME CMD...: GNU time's wall seconds and peak RSS (KiB) into
# $wall and $rss; the command's stdout into $work/NAME.out.
measure() {
	local name=$1
	shift
	/usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || {
		echo "verify.sh: $name failed:" >&2
		cat "$work/$name.err" >&2
		return 1
	}
	read -r wall rss <"$work/$name.time"
}

part=${PART:-all}
case $part in all | verify | create) ;; *) echo "verify.sh: PART=$part: want all, verify or create" >&2; exit 2 ;; esac
if [[ $part != create ]]; then # part 1 (not indented, to keep its lines as they are)
echo "== verify: $entries ascii ima-ng entries, policy with every digest"
list=$cache/list-$entries
if [[ ! -s $list/policy.json ]]; then
	echo "generating into $list ..." >&2
	(cd "$here" && go run ./bench/verifygen "$entries" "$list")
fi
cd "$list"
cat ascii_runtime_measurements policy.json >/dev/null # page cache
pcr10=$(sed 's/PCR-10: //' pcrs-sha1.txt | tr 'A-F' 'a-f')
policy_kib=$(($(stat -c %s policy.json) / 1024))

# imago RUNS times (a run varies by ~10% here): the median wall and the
# highest peak RSS count; every run must pass.
runs=${RUNS:-5}
walls=()
imago_rss=0
for ((i = 0; i < runs; i++)); do
	measure imago "$imago" verify ascii_runtime_measurements --runtime-policy policy.json \
		--pcrs sha1,pcrs-sha1.txt --pcrs sha256,pcrs-sha256.txt
	grep -q '^PASS:' "$work/imago.out" || { echo "verify.sh: imago did not pass the list" >&2; cat "$work/imago.out" >&2; exit 1; }
	walls+=("$wall")
	((rss > imago_rss)) && imago_rss=$rss
done
read -r imago_wall imago_walls < <(printf '%s\n' "${walls[@]}" | sort -n | awk '{w[NR] = $1} END {
	m = (NR % 2) ? w[(NR + 1) / 2] : (w[NR / 2] + w[NR / 2 + 1]) / 2
	s = w[1]; for (i = 2; i <= NR; i++) s = s "," w[i]
	print m, s
}')

measure keylime /usr/bin/python3 "$runner" "$kl" ascii_runtime_measurements --policy policy.json --pcr10 "$pcr10"
kl_wall=$wall kl_rss=$rss
kl_secs=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$work/keylime.out")
grep -q '"pass": true' "$work/keylime.out" || { echo "verify.sh: Keylime did not pass the list" >&2; cat "$work/keylime.out" >&2; exit 1; }

awk -v iw="$imago_wall" -v runs="$runs" -v walls="$imago_walls" -v ir="$imago_rss" -v ks="$kl_secs" -v kw="$kl_wall" -v kr="$kl_rss" -v pk="$policy_kib" 'BEGIN {
	printf "imago verify (sha1+sha256, whole command): %.2f s (median of %d runs: %s s), peak RSS %.0f MiB (policy %.0f MiB + 64 MiB = %.0f MiB: %s)\n",
		iw, runs, walls, ir/1024, pk/1024, pk/1024+64, (ir <= pk+65536 ? "within" : "OVER")
	printf "Keylime process_measurement_list (sha1):  %.2f s (whole run %.2f s with json.load, peak RSS %.0f MiB)\n", ks, kw, kr/1024
	printf "ratio: %.1fx (Keylime process_measurement_list / imago whole command); %.1fx whole run / whole command\n", ks/iw, kw/iw
}'
fi # part 1
[[ $part != verify ]] || exit 0

echo "== runtime-policy create --from-dir: $small small files, $big x ${bigmb} MiB"
tree=$cache/tree-$small-$big-$bigmb
if [[ ! -f $tree.done ]]; then
	echo "generating $tree ..." >&2
	rm -rf "$tree"
	mkdir -p "$tree/usr/lib" "$tree/usr/share/big"
	python3 - "$tree" "$small" "$big" "$bigmb" <<'PY'
import os, sys
root, small, big, bigmb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for i in range(small):
    d = os.path.join(root, "usr/lib/pkg%03d" % (i % 500))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%06d" % i), "wb") as f:
        f.write(os.urandom(1024 + (i * 7919) % 7168))
chunk = os.urandom(1 << 20)
for i in range(big):
    with open(os.path.join(root, "usr/share/big/blob%d" % i), "wb") as f:
        for _ in range(bigmb):
            f.write(chunk)
PY
	touch "$tree.done"
fi
bytes=$(find "$tree" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
find "$tree" -type f -exec cat {} + >/dev/null # warm: the whole tree in the page cache
(cd "$here" && go build -o "$work/sharate" ./bench/sharate && go build -o "$work/treefloor" ./bench/treefloor)
cores=$(nproc)
load0=$(cut -d' ' -f1-3 /proc/loadavg)

# The yardstick right before and right after imago: Go's SHA-256 rate per
# core with every core hashing (MB/s; and per CPU-second).
read -r g1 gc1 < <("$work/sharate" 2)
/usr/bin/time -f "%e %U %S %M" -o "$work/create.time" "$imago" runtime-policy create --from-dir "$tree" -o "$work/create.json" \
	>"$work/create.out" 2>"$work/create.err" || { echo "verify.sh: create failed:" >&2; cat "$work/create.err" >&2; exit 1; }
read -r c_wall c_user c_sys c_rss <"$work/create.time"
read -r g2 gc2 < <("$work/sharate" 2)
load1=$(cut -d' ' -f1-3 /proc/loadavg)
# The ceiling, right after: the least a hasher must do on this tree (open,
# read or map, hash, close; no walk, no output), and reading alone.
read -r f_wall f_cpu f_way f_read f_touch f_bytes f_files f_swall f_scpu < <("$work/treefloor" -runs 5 "$tree")

measure sha256sum sh -c 'find "$1" -type f -print0 | xargs -0 sha256sum' sh "$tree"
s_wall=$wall
measure sha256sumP sh -c 'find "$1" -type f -print0 | xargs -0 -P "$2" -n 500 sha256sum' sh "$tree" "$cores"
sp_wall=$wall
measure kpolicy /usr/bin/python3 -c 'import sys, logging; sys.path.insert(0, sys.argv[1]); logging.disable(logging.CRITICAL)
from keylime.cmd import keylime_policy
sys.argv = ["keylime-policy", "create", "runtime", "--rootfs", sys.argv[2], "-o", sys.argv[3]]
keylime_policy.main()' "$kl" "$tree" "$work/keylime-policy.json"
k_wall=$wall
# Both policies list the same digests.
python3 - "$work/create.json" "$work/keylime-policy.json" <<'PY' || { echo "verify.sh: imago's and keylime-policy's digests differ" >&2; exit 1; }
import json, sys
a, b = (json.load(open(f))["digests"] for f in sys.argv[1:3])
sys.exit(0 if a == b and len(a) > 0 else 1)
PY
awk -v b="$bytes" -v c="$c_wall" -v cu="$c_user" -v cs="$c_sys" -v s="$s_wall" -v sp="$sp_wall" -v k="$k_wall" \
	-v g1="$g1" -v g2="$g2" -v gc1="$gc1" -v gc2="$gc2" -v n="$cores" -v l0="$load0" -v l1="$load1" -v sm="$small" -v bg="$big" -v bm="$bigmb" \
	-v fw="$f_wall" -v fc="$f_cpu" -v fway="$f_way" -v fr="$f_read" -v ft="$f_touch" -v fb="$f_bytes" -v sw="$f_swall" -v sc="$f_scpu" 'BEGIN {
	mb = b / 1e6; g = (g1 + g2) / 2; gc = (gc1 + gc2) / 2; cpu = cu + cs
	printf "tree: %.0f MB (%d small files, %d x %d MiB), warm in the page cache (read once before, nothing dropped); load %s before, %s after\n", mb, sm, bg, bm, l0, l1
	printf "Go SHA-256 per core, all %d cores hashing: %.0f MB/s before imago, %.0f MB/s after, mean %.0f MB/s (per CPU-second: %.0f, %.0f)\n", n, g1, g2, g, gc1, gc2
	printf "imago runtime-policy create --from-dir: %.2f s, %.0f MB/s = %.0f MB/s per core on %d cores = %.0f%% of Go SHA-256 per core\n", c, mb/c, mb/c/n, n, 100*mb/c/n/g
	printf "  CPU: user %.2f s + system %.2f s = %.0f MB per CPU-second = %.0f%% of Go SHA-256 per CPU-second; peak RSS %.0f MiB\n", cu, cs, mb/cpu, 100*mb/cpu/gc, '"$c_rss"'/1024
	fmb = fb / 1e6; fy = (fway == "mmap" ? ft : fr)
	printf "ceiling on this machine: a hasher that only opens, reads and hashes (no walk, no output) reaches %.0f%% of Go SHA-256 per core; reading the bytes alone costs %.2f CPU-s = %.0f%% of the hashing\n", 100*sw/fw, fy, 100*fy/fc
	printf "  ceiling: %.2f s, %.0f MB/s per core, CPU %.2f s = %.0f%% of Go SHA-256 per CPU-second (big files by %s); Go SHA-256 over as many bytes from an in-cache buffer, measured alike: %.2f s, CPU %.2f s (best of 5 runs each, alternating); read alone: read(2) %.2f CPU-s, big files mapped and touched %.2f CPU-s\n", fw, fmb/fw/n, fc, 100*sc/fc, fway, sw, sc, fr, ft
	printf "  imago = %.0f%% of that ceiling (wall), %.0f%% per CPU-second (imago once, the ceiling the best of 5 runs)\n", 100*fw/c*mb/fmb, 100*fc/cpu*mb/fmb
	printf "find | xargs sha256sum:                 %.2f s, %.0f MB/s (imago %.1fx)\n", s, mb/s, s/c
	printf "find | xargs -P%d sha256sum:             %.2f s, %.0f MB/s (imago %.1fx)\n", n, sp, mb/sp, sp/c
	printf "keylime-policy create runtime --rootfs: %.2f s, %.0f MB/s (imago %.1fx)\n", k, mb/k, k/c
}'
