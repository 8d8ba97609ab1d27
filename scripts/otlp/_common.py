"""Shared helpers for the OTLP drivers (argument parsing, exporter construction)."""

import argparse


def parse_headers(values):
    headers = {}
    for item in values or []:
        if "=" not in item:
            raise SystemExit(f"--header expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        headers[k.strip()] = v.strip()
    return headers


def base_parser(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--endpoint", required=True, help="OTLP/HTTP base URL, e.g. http://127.0.0.1:4318")
    p.add_argument("--header", action="append", default=[], help="KEY=VALUE (repeatable)")
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--gzip", action="store_true", help="gzip request bodies")
    return p


def span_exporter(endpoint, headers, use_gzip):
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(
        endpoint=endpoint.rstrip("/") + "/v1/traces",
        headers=headers,
        compression=Compression.Gzip if use_gzip else Compression.NoCompression,
        timeout=10,
    )


def metric_exporter(endpoint, headers, use_gzip):
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(
        endpoint=endpoint.rstrip("/") + "/v1/metrics",
        headers=headers,
        compression=Compression.Gzip if use_gzip else Compression.NoCompression,
        timeout=10,
    )
