//! OTLP/HTTP bodies (`POST /v1/traces`, `/v1/metrics`): gzip, protobuf or OTLP/JSON, each
//! span as voicemon holds it, turns assembled (and expired, and drained), and LiveKit's
//! STT audio counter. The first byte picks the encoding and whether the rest is gzip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use voicemon_server::otlp::assemble::{Assembled, Assembler, AssemblyConfig};
use voicemon_server::otlp::decode::{decode, inflate, Encoding};
use voicemon_server::otlp::metrics::Counters;
use voicemon_server::otlp::span::Span;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let encoding = if selector & 1 == 0 { Encoding::Protobuf } else { Encoding::Json };
    let content_encoding = (selector & 2 != 0).then_some("gzip");
    let Ok(bytes) = inflate(body.to_vec(), content_encoding, 1 << 20) else { return };
    if let Ok(request) = decode::<ExportTraceServiceRequest>(&bytes, encoding) {
        let config = AssemblyConfig { max_held_spans: 64, ..AssemblyConfig::default() };
        let mut assembler = Assembler::new(config);
        let mut out = Assembled::default();
        let spans = request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans);
        for (at, proto) in spans.enumerate() {
            if let Ok(span) = Span::from_proto(proto) {
                assembler.add("fuzz", Some("agent"), span, at as i64, &mut out);
            }
        }
        assembler.expire(10_000, &mut out);
        assembler.drain(&mut out);
        assert_eq!(assembler.held(), 0);
    }
    if let Ok(request) = decode::<ExportMetricsServiceRequest>(&bytes, encoding) {
        let mut counters = Counters::new(0);
        let _ = counters.count(&request, |_| Ok(("fuzz".to_owned(), None)), 0);
    }
});
