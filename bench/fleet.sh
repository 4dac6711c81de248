#!/usr/bin/env bash
# bench/fleet.sh: the fleet's throughput. Emulated attesters (bench/attestload:
# software TPMs whose quotes are real TPMS_ATTEST structures signed by
# software AKs, enrolled through the credential exchange) attest to
# `imago verifier serve` replicas on one PostgreSQL cluster (started here with
# initdb in a temporary directory, 127.0.0.1, fsync and synchronous_commit on),
# over TLS, NEW_ENTRIES new list entries a round, every verdict durable before
# it is answered. Three runs, each on a fresh database:
#   1. one replica
#   2. two replicas (every attester is given both URLs)
#   3. two replicas, one killed with SIGKILL half way: the attesters fail over,
#      and afterwards every acknowledged verdict must be in the store.
# For each: verified attestations/s, round latency p50/p99, peak RSS of each
# replica (VmHWM), rounds without a verdict, verified per second over time.
#
# usage: bench/fleet.sh
# env:   NODES=10000 WORKERS=96 DURATION=60s NEW_ENTRIES=10 IMAGO=prebuilt binary
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
nodes=${NODES:-10000}
workers=${WORKERS:-96}
duration=${DURATION:-60s}
entries=${NEW_ENTRIES:-10}
secs=${duration%s}
pgbin=${PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[[ -x $pgbin/initdb ]] || { echo "fleet.sh: PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 2; }
command -v openssl >/dev/null || { echo "fleet.sh: openssl not installed" >&2; exit 2; }

work=$(mktemp -d)
chmod 755 "$work"
pids=()
as=()
[[ $(id -u) == 0 ]] && as=(runuser -u postgres --)
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	[[ -f $work/pg/postmaster.pid ]] && "${as[@]}" "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
imago=${IMAGO:-}
if [[ -z $imago ]]; then
	(cd "$here" && go build -o "$work/imago" ./cmd/imago)
	imago=$work/imago
fi
(cd "$here" && go build -o "$work/attestload" ./bench/attestload)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# PostgreSQL
mkdir -p "$work/pg"
[[ ${#as[@]} -gt 0 ]] && chown postgres "$work/pg"
"${as[@]}" "$pgbin/initdb" -D "$work/pg" -U imago --auth=trust -E UTF8 --locale=C --no-instructions >"$work/initdb.log"
pgport=$(port)
"${as[@]}" "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg/server.log" -w -o "-p $pgport -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB" start >/dev/null
pgversion=$("$pgbin/postgres" --version)

"$work/attestload" ca "$work/load-ca"
mkdir -p "$work/roots"
cp "$work/load-ca/ca.pem" "$work/roots/"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=imago-bench \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.pem" 2>/dev/null

declare -A vpid
serve() { # serve NAME DB PORT
	"$imago" verifier serve --listen 127.0.0.1:$3 --db "$2" --tls-cert "$work/tls.pem" --tls-key "$work/tls.key" \
		--ek-roots "$work/roots" --interval 10m --lease-ttl 5s --replica "$1" --log-level warn --log-format text 2>>"$work/$1.log" &
	vpid[$1]=$!
	pids+=($!)
	for _ in $(seq 300); do
		"$imago" verifier node list --server "https://127.0.0.1:$3" --ca "$work/tls.pem" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "fleet.sh: replica $1 did not start" >&2; cat "$work/$1.log" >&2; exit 1
}
hwm() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
# cpu PID...: user+system CPU ticks of the processes
cpu() { local t=0 p; for p in "$@"; do [[ -r /proc/$p/stat ]] && t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done; echo $t; }
# pgpids: the postmaster and its children
pgpids() { local m; m=$(head -1 "$work/pg/postmaster.pid"); echo "$m $(pgrep -P "$m" | tr '\n' ' ')"; }

run() { # run NAME REPLICAS KILL
	local name=$1 n=$2 kill=$3 db urls="" ports=() i
	"${as[@]}" "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U imago "$name"
	db="postgres://imago@127.0.0.1:$pgport/$name?sslmode=disable"
	for ((i = 0; i < n; i++)); do
		ports+=($(port))
		serve "$name-r$i" "$db" "${ports[$i]}"
		urls+="${urls:+,}https://127.0.0.1:${ports[$i]}"
	done
	echo "[$name] $n replica(s), $nodes nodes, $workers rounds in flight, $entries new entries a round, $duration; load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	"$work/attestload" run --verifier "$urls" --ca "$work/tls.pem" --ek-ca "$work/load-ca" --nodes "$nodes" --workers "$workers" \
		--entries "$entries" --duration "$duration" --acked "$work/$name.acked" --json "$work/$name.json" $([[ $kill == 1 ]] && echo --tolerate-errors) \
		>/dev/null 2>"$work/$name.load.log" &
	local load=$!
	pids+=($load)
	local killed=""
	# CPU of the replicas and of PostgreSQL over the timed run (not enrollment)
	until grep -q "running" "$work/$name.load.log" 2>/dev/null; do sleep 0.2; kill -0 $load 2>/dev/null || break; done
	local rpids=() ; for ((i = 0; i < n; i++)); do rpids+=(${vpid[$name-r$i]}); done
	local pgp; pgp=$(pgpids)
	local rcpu0 pgcpu0; rcpu0=$(cpu "${rpids[@]}"); pgcpu0=$(cpu $pgp)
	if [[ $kill == 1 ]]; then
		# wait for the timed run to start, then kill replica 0 half way
		until grep -q "running" "$work/$name.load.log" 2>/dev/null; do sleep 0.5; kill -0 $load 2>/dev/null || break; done
		sleep $((secs / 2))
		killed="$(hwm ${vpid[$name-r0]})"
		kill -9 "${vpid[$name-r0]}"
		echo "[$name] replica $name-r0 killed with SIGKILL at $((secs / 2)) s" >&2
	fi
	wait $load || { cat "$work/$name.load.log" >&2; exit 1; }
	local rcpu1 pgcpu1; rcpu1=$(cpu "${rpids[@]}"); pgcpu1=$(cpu $(pgpids))
	local rss=()
	for ((i = 0; i < n; i++)); do
		if [[ $kill == 1 && $i == 0 ]]; then rss+=("$killed (killed)"); else rss+=("$(hwm ${vpid[$name-r$i]})"); fi
	done
	if [[ $kill == 1 ]]; then
		"$work/attestload" check --verifier "https://127.0.0.1:${ports[1]}" --ca "$work/tls.pem" --acked "$work/$name.acked" >&2
	fi
	python3 - "$work/$name.json" "$name" "${rss[*]}" $((rcpu1 - rcpu0)) $((pgcpu1 - pgcpu0)) $kill <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
tl = r.get("timeline", [])
rounds = r["verified"] + r["failed"]
if rounds and sys.argv[6] == "0":
    print(f"{'':10s} CPU per round: replicas {int(sys.argv[4]) * 10000 / rounds:.0f} us, PostgreSQL {int(sys.argv[5]) * 10000 / rounds:.0f} us "
          f"(the load generator's own not counted)")
print(f"{sys.argv[2]:10s} {r['per_second']:8.1f} verified/s  ({r['verified']} in {r['seconds']:.1f} s; p50 {r['p50_ms']:.1f} ms, "
      f"p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.0f} ms; {r['failed']} failed, {r['errors']} without a verdict); "
      f"peak RSS MiB per replica: {sys.argv[3]}")
if tl:
    print(f"{'':10s} verified per second: {' '.join(str(x) for x in tl)}")
PY
	for ((i = 0; i < n; i++)); do kill "${vpid[$name-r$i]}" 2>/dev/null || true; done
	wait "${vpid[@]}" 2>/dev/null || true
	unset vpid
	declare -gA vpid
}

echo "imago fleet on $(nproc) cores, $pgversion; $(uptime | sed 's/.*load/load/')" >&2
run one 1 0 | tee "$work/one.out"
run two 2 0 | tee "$work/two.out"
run failover 2 1 | tee "$work/failover.out"
python3 - "$work/one.json" "$work/two.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
print(f"scaling:   1 -> 2 replicas: {a['per_second']:.0f} -> {b['per_second']:.0f} verified/s ({b['per_second'] / a['per_second']:.2f}x) on {__import__('os').cpu_count()} cores shared with PostgreSQL and the load generator")
PY
