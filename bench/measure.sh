#!/usr/bin/env bash
# bench/measure.sh: the measurement agent's cost per new measurement, on the
# embedded TPM simulator and on swtpm (started by the benchmark), split into
# hash, append+fdatasync of the durable list, TPM extend and exports, against
# the bare TPM2_PCR_Extend time of the same TPM measured in the same run.
#
#   bash bench/measure.sh [N]     N new 4 KiB files per backend (default 500)
#
# Numbers depend on the disk (fdatasync) and on the machine's load; the
# split shows where the time goes. Needs swtpm (and cgo for the simulator).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
out=$(go test -run '^$' -bench '^BenchmarkMeasure$' -benchtime "${N}x" -count 1 ./agent)
echo "$out" | grep -E '^(goos|goarch|cpu):' || true
echo
printf '%-8s %10s %12s %10s %16s %10s %10s %14s\n' backend files/s us/measure hash append+fsync extend export bare-extend
echo "$out" | awk '/^BenchmarkMeasure\// {
	name = $1; sub(/^BenchmarkMeasure\//, "", name); sub(/-[0-9]+$/, "", name)
	delete m
	for (i = 5; i < NF; i += 2) m[$(i+1)] = $i
	printf "%-8s %10.0f %12.1f %10.1f %16.1f %10.1f %10.1f %14.1f\n", name, m["files/s"], $3/1000,
		m["hash-us/op"], m["append+fsync-us/op"], m["extend-us/op"], m["export-us/op"], m["bare-extend-us/op"]
}'
echo
echo "(microseconds per new measurement; us/measure is the whole Measure call, including open, stat and xattrs)"
