#!/usr/bin/env bash
# bench/attest.sh: verified attestations per second of `imago verifier serve`
# under emulated attesters (bench/attestload: software TPMs whose quotes are
# real TPMS_ATTEST structures signed by software AKs, enrolled through the
# credential exchange) plus one real swtpm with a real EK certificate chain,
# NEW_ENTRIES new list entries a round, TLS, every verdict durable (SQLite in
# WAL mode with synchronous=FULL) before it is answered. Then the verifier is
# killed with SIGKILL, restarted, and every acknowledged verdict must be in
# the store. Keylime's published push-model load test is printed beside it.
#
# usage: bench/attest.sh
# env:   NODES=1000 WORKERS=64 DURATION=30s NEW_ENTRIES=10 DB=sqlite (or a postgres:// URL)
#        IMAGO=prebuilt imago binary (else built here)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
nodes=${NODES:-1000}
workers=${WORKERS:-64}
duration=${DURATION:-30s}
entries=${NEW_ENTRIES:-10}
for t in swtpm swtpm_setup swtpm_localca openssl; do
	command -v $t >/dev/null || { echo "attest.sh: $t not installed (apt-get install swtpm swtpm-tools openssl)" >&2; exit 2; }
done

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
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
db=${DB:-sqlite}
[[ $db == sqlite ]] && db="sqlite://$work/verifier.db"

# port [N]: a free port on 127.0.0.1, with the N-1 ports after it free too.
port() {
	python3 - "${1:-1}" <<'PY'
import socket, sys
n = int(sys.argv[1])
for _ in range(100):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    try:
        others = []
        for i in range(1, n):
            o = socket.socket(); o.bind(("127.0.0.1", p + i)); others.append(o)
        print(p); break
    except OSError:
        continue
PY
}

# A swtpm with EK certificates from a private local CA (touches nothing under /etc or /var/lib).
ca=$work/swtpm-ca; st=$work/swtpm-state
mkdir -p "$ca" "$st"
printf 'statedir = %s\nsigningkey = %s/signkey.pem\nissuercert = %s/issuercert.pem\ncertserial = %s/certserial\n' "$ca" "$ca" "$ca" "$ca" >"$ca/localca.conf"
printf -- '--platform-manufacturer imago\n--platform-version 2.1\n--platform-model bench\n' >"$ca/localca.options"
printf 'create_certs_tool = %s\ncreate_certs_tool_config = %s/localca.conf\ncreate_certs_tool_options = %s/localca.options\nactive_pcr_banks = sha1,sha256\n' \
	"$(command -v swtpm_localca)" "$ca" "$ca" >"$ca/setup.conf"
swtpm_setup --tpm2 --tpmstate "$st" --create-ek-cert --create-platform-cert --lock-nvram --config "$ca/setup.conf" \
	--pcr-banks sha1,sha256 --overwrite >"$work/swtpm_setup.log" 2>&1
tpmport=$(port 2)
swtpm socket --tpm2 --tpmstate dir="$st" --flags not-need-init,startup-clear \
	--server type=tcp,port=$tpmport,bindaddr=127.0.0.1 --ctrl type=tcp,port=$((tpmport + 1)),bindaddr=127.0.0.1 &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$tpmport) 2>/dev/null && break; sleep 0.1; done

roots=$work/ek-roots
mkdir -p "$roots"
cp "$ca/swtpm-localca-rootca-cert.pem" "$ca/issuercert.pem" "$roots/"
"$work/attestload" ca "$work/load-ca"
cp "$work/load-ca/ca.pem" "$roots/attestload-ca.pem"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=imago-bench \
	-addext subjectAltName=IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.pem" 2>/dev/null
vport=$(port)
url=https://127.0.0.1:$vport
serve() {
	"$imago" verifier serve --listen 127.0.0.1:$vport --db "$db" --tls-cert "$work/tls.pem" --tls-key "$work/tls.key" \
		--ek-roots "$roots" --interval 10m --log-level warn --log-format text 2>>"$work/verifier.log" &
	vpid=$!
	pids+=($vpid)
	for _ in $(seq 100); do
		"$imago" verifier node list --server "$url" --ca "$work/tls.pem" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "attest.sh: the verifier did not start" >&2; cat "$work/verifier.log" >&2; exit 1
}
serve

echo "imago verifier ($(nproc) cores, store ${db%%://*}): $nodes emulated attesters + 1 swtpm, $workers rounds in flight, $entries new entries a round, $duration" >&2
"$work/attestload" run --verifier "$url" --ca "$work/tls.pem" --ek-ca "$work/load-ca" --nodes "$nodes" --workers "$workers" \
	--entries "$entries" --duration "$duration" --swtpm "tcp://127.0.0.1:$tpmport" --acked "$work/acked.json" --json "$work/report.json" \
	--verifier-pid $vpid >/dev/null
kill -9 $vpid
wait $vpid 2>/dev/null || true
serve
"$work/attestload" check --verifier "$url" --ca "$work/tls.pem" --acked "$work/acked.json"

python3 - "$work/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
keylime = 17437 / 4462.0   # Keylime push-model load test: 17,437 attestations in 4,462 s
print(f"imago:   {r['per_second']:8.1f} verified attestations/s  ({r['verified']} in {r['seconds']:.1f} s; "
      f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms; {r['failed']} failed, {r['errors']} errors; "
      f"swtpm rounds {r['swtpm_rounds']})")
v, l = r.get('verifier_cpu_us_per_round', 0), r.get('load_cpu_us_per_round', 0)
if v:
    print(f"cpu:     verifier {v:.0f} us + load generator {l:.0f} us per round: {2e6 / (v + l):.0f}/s on 2 idle cores "
          f"with the load generator beside it, {2e6 / v:.0f}/s for the verifier alone")
with open('/proc/loadavg') as f:
    print(f"machine: load average {f.read().split()[0]} at the end (other work shares these {__import__('os').cpu_count()} cores)")
print(f"keylime: {keylime:8.1f} attestations/s (published push load test, not run here)")
print(f"ratio:   {r['per_second'] / keylime:8.0f}x")
PY
