#!/usr/bin/env python3
"""Tiny OTLP/HTTP capture server.

Accepts POST /v1/traces and /v1/metrics (and /v1/logs), saves each raw body plus a
small .meta.json (path, Content-Type, Content-Encoding, headers) into --out, and
answers 200 with an empty protobuf body (an empty Export*ServiceResponse).

    python capture.py --port 4318 --out /tmp/cap
    python capture.py --decode /tmp/cap > decoded.json   # decode a capture dir to JSON
"""

import argparse
import gzip
import json
import os
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_lock = threading.Lock()
_seq = [0]


def make_handler(out_dir):
    class H(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            sys.stderr.write("capture: " + (fmt % args) + "\n")

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            path = self.path.split("?")[0]
            if path not in ("/v1/traces", "/v1/metrics", "/v1/logs"):
                self.send_response(404)
                self.end_headers()
                return
            with _lock:
                _seq[0] += 1
                seq = _seq[0]
            kind = path.rsplit("/", 1)[-1]
            base = os.path.join(out_dir, f"{seq:04d}-{kind}")
            with open(base + ".bin", "wb") as f:
                f.write(body)
            meta = {
                "seq": seq,
                "path": path,
                "received_unix": time.time(),
                "content_type": self.headers.get("Content-Type"),
                "content_encoding": self.headers.get("Content-Encoding"),
                "headers": {k: v for k, v in self.headers.items()},
                "bytes": len(body),
            }
            with open(base + ".meta.json", "w") as f:
                json.dump(meta, f, indent=1)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

    return H


def _body(raw, enc):
    if enc == "gzip":
        return gzip.decompress(raw)
    if enc == "deflate":
        return zlib.decompress(raw)
    return raw


def decode_dir(d):
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    out = []
    for name in sorted(os.listdir(d)):
        if not name.endswith(".meta.json"):
            continue
        meta = json.load(open(os.path.join(d, name)))
        raw = open(os.path.join(d, name.replace(".meta.json", ".bin")), "rb").read()
        body = _body(raw, meta.get("content_encoding"))
        msg = ExportTraceServiceRequest() if meta["path"] == "/v1/traces" else ExportMetricsServiceRequest()
        if "json" in (meta.get("content_type") or ""):
            out.append({"meta": meta, "request": json.loads(body)})
            continue
        msg.ParseFromString(body)
        out.append({"meta": {k: meta[k] for k in ("seq", "path", "content_type", "content_encoding", "bytes")},
                    "request": MessageToDict(msg)})
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=4318)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--out", help="directory to save captures into")
    p.add_argument("--decode", metavar="DIR", help="decode a capture directory to JSON on stdout and exit")
    a = p.parse_args()
    if a.decode:
        json.dump(decode_dir(a.decode), sys.stdout, indent=1)
        print()
        return
    if not a.out:
        p.error("--out is required unless --decode")
    os.makedirs(a.out, exist_ok=True)
    srv = ThreadingHTTPServer((a.host, a.port), make_handler(a.out))
    sys.stderr.write(f"capture: listening on http://{a.host}:{a.port}, saving to {a.out}\n")
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
