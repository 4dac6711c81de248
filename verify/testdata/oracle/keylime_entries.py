#!/usr/bin/python3
"""Per-entry failure ids from Keylime's own process_measurement_list.

usage: keylime_entries.py KEYLIME_SRC MANIFEST.json
MANIFEST is a list of cases {"list": PATH, "policy": PATH or null, "keys":
[PEM paths], "pcr10": SHA1 hex or null}. Prints one JSON list with, per
case, {"pass": bool, "events": [ids of the whole list, with pcr10 if given],
"entries": [[ids added by line i], ...]}. Line i's
ids are those of the prefix 0..i minus those of the prefix 0..i-1, each
prefix verified from a fresh state, so keys learned from earlier lines count
as in one run. Run with Debian's /usr/bin/python3.
"""
import copy, json, logging, sys

def main():
    src, manifest = sys.argv[1], sys.argv[2]
    sys.path.insert(0, src)
    logging.disable(logging.CRITICAL)
    from keylime.ima import ima, file_signatures

    def run(case):
        rp = json.load(open(case["policy"])) if case.get("policy") else None
        keys = case.get("keys") or []

        def keyrings():
            if not keys:
                return None
            rings = file_signatures.ImaKeyrings()
            tk = file_signatures.ImaKeyring()
            for k in keys:
                tk.add_pubkey(file_signatures.get_pubkey(open(k, "rb").read())[0], None)
            rings.set_tenant_keyring(tk)
            return rings

        def ids(lines):
            _, f = ima.process_measurement_list(None, lines, copy.deepcopy(rp), ima_keyrings=keyrings())
            return [e.event_id for e in f.events] if f else []

        lines = [l for l in open(case["list"]).read().split("\n") if l != ""]
        prev, per = [], []
        for i in range(len(lines)):
            cur = ids(lines[: i + 1])
            rest = list(cur)
            for e in prev:
                if e in rest:
                    rest.remove(e)
            per.append(rest)
            prev = cur
        events = prev
        if case.get("pcr10"):
            _, f = ima.process_measurement_list(None, lines, copy.deepcopy(rp), pcrval=case["pcr10"], ima_keyrings=keyrings())
            events = [e.event_id for e in f.events] if f else []
        return {"pass": not events, "events": events, "entries": per}

    print(json.dumps([run(c) for c in json.load(open(manifest))]))

main()
