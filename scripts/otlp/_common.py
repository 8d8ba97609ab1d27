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


def add_summary_argument(parser):
    parser.add_argument("--summary", default=None,
                        help="write what the framework measured (from its own spans) to this JSON file")


class Recorder:
    """Keeps every span the framework ends, beside the OTLP exporter, so the driver can say
    what the framework itself measured (the test compares voicemon's answers with it)."""

    def __init__(self, tracer_provider):
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.memory = InMemorySpanExporter()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.memory))

    def spans(self):
        return list(self.memory.get_finished_spans())


def failed(span):
    from opentelemetry.trace import StatusCode

    return span.status.status_code == StatusCode.ERROR


def write_summary(path, summary):
    import json

    if path:
        with open(path, "w") as out:
            json.dump(summary, out, indent=1, sort_keys=True)
