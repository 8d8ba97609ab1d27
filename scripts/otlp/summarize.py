#!/usr/bin/env python3
"""Print the span tree / attributes of a decoded capture (output of capture.py --decode)."""
import base64
import json
import sys


def val(v):
    for k in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if k in v:
            return k.replace("Value", ""), v[k]
    return "other", v


def main(path):
    reqs = json.load(open(path))
    spans = []
    for i, r in enumerate(reqs):
        if r["meta"]["path"] != "/v1/traces":
            continue
        for rs in r["request"].get("resourceSpans", []):
            res = {a["key"]: val(a["value"])[1] for a in rs.get("resource", {}).get("attributes", [])}
            print(f"request #{r['meta']['seq']} resource={res}")
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    s["_req"] = r["meta"]["seq"]
                    s["_scope"] = ss.get("scope", {}).get("name")
                    spans.append(s)
    byid = {s["spanId"]: s for s in spans}
    kids = {}
    for s in spans:
        kids.setdefault(s.get("parentSpanId"), []).append(s)
    t0 = min(int(s["startTimeUnixNano"]) for s in spans)

    def show(s, d):
        st = (int(s["startTimeUnixNano"]) - t0) / 1e9
        en = (int(s["endTimeUnixNano"]) - t0) / 1e9
        attrs = {a["key"]: val(a["value"]) for a in s.get("attributes", [])}
        short = {k: (t, (v[:40] + "...") if isinstance(v, str) and len(v) > 43 else v) for k, (t, v) in attrs.items()}
        print("  " * d + f"{s['name']} [{s['_scope']}] req#{s['_req']} {st:.3f}->{en:.3f}s status={s.get('status', {})} "
              f"events={[e['name'] for e in s.get('events', [])]}")
        for k, (t, v) in short.items():
            print("  " * d + f"    {k} ({t}) = {v!r}")
        for c in sorted(kids.get(s["spanId"], []), key=lambda x: int(x["startTimeUnixNano"])):
            show(c, d + 1)

    roots = [s for s in spans if not s.get("parentSpanId") or s["parentSpanId"] not in byid]
    for r in sorted(roots, key=lambda x: int(x["startTimeUnixNano"])):
        if r.get("parentSpanId"):
            print(f"(orphan: parent {r['parentSpanId']} not exported)")
        show(r, 0)


if __name__ == "__main__":
    main(sys.argv[1])
