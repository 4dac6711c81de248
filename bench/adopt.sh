#!/usr/bin/env bash
# bench/adopt.sh: adoption's catch-up on swtpm (sha1+sha256 banks) side by side,
# in one run, with the floor (bare TPM2_PCR_Extend calls through the same
# transport) and with what a script would do without imago (one
# tpm2_pcrextend process per entry; IBM's imaextend is not packaged in Debian
# 12), plus the restart cost (finding the prefix the TPM holds in a
# 100,000-entry list).
#
# usage: bench/adopt.sh [ROUNDS]       (default 5; each round starts from a freshly powered-on TPM)
# Needs swtpm, swtpm_setup and tpm2-tools. Prints entries/s and the ratios.
set -euo pipefail
rounds=${1:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
out=$(cd "$here" && go test -run '^$' -bench 'BenchmarkCatchUp|BenchmarkFindPrefix' -benchtime "${rounds}x" ./adopt/)
echo "$out" | grep -E '^Benchmark'
rate() { echo "$out" | awk -v n="$1" '$1 ~ n { for (i = 1; i < NF; i++) if ($(i+1) == "entries/s") print $i }'; }
imago=$(rate 'imago-adopt')
bare=$(rate 'bare-extend')
tool=$(rate 'tpm2_pcrextend')
awk -v i="$imago" -v b="$bare" -v t="$tool" 'BEGIN {
	printf "catch-up: imago %.0f entries/s = %.0f%% of bare extends (%.0f/s); %.1fx one tpm2_pcrextend per entry (%.0f/s)\n", i, 100 * i / b, b, i / t, t
}'
