//! OTLP/HTTP bodies: protobuf (`application/x-protobuf`) or OTLP/JSON (`application/json`),
//! gzip-compressed or not, into the collector's request messages; and the answers, in the
//! encoding the request used, as the OTLP/HTTP specification asks.

use flate2::read::GzDecoder;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::Read;

/// How a body is encoded; the answer uses the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` names (parameters ignored); `None` for any other.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Encoding> {
        let essence = content_type?.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }

    /// `message` in this encoding.
    pub fn encode<T: prost::Message + Serialize>(self, message: &T) -> Vec<u8> {
        match self {
            Encoding::Protobuf => message.encode_to_vec(),
            // The generated messages serialise infallibly (no maps with non-string keys).
            Encoding::Json => serde_json::to_vec(message).unwrap_or_default(),
        }
    }
}

/// Why a body is not an OTLP request. Each is a 400 (or a 413 for [`DecodeError::TooLarge`]),
/// which exporters do not retry.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("Content-Encoding `{0}` is not supported; send gzip or no encoding")]
    Encoding(String),
    #[error("the gzip body could not be inflated: {0}")]
    Gzip(String),
    #[error("the body inflates to more than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("not an OTLP protobuf message: {0}")]
    Protobuf(String),
    #[error("not an OTLP/JSON message: {0}")]
    Json(String),
}

/// The body as sent, inflated when `Content-Encoding` says gzip; at most `limit` bytes
/// after inflating, so a small compressed body cannot take unbounded memory.
pub fn inflate(body: Vec<u8>, content_encoding: Option<&str>, limit: usize) -> Result<Vec<u8>, DecodeError> {
    let encoding = content_encoding.map(|e| e.trim().to_ascii_lowercase()).unwrap_or_default();
    match encoding.as_str() {
        "" | "identity" => Ok(body),
        "gzip" | "x-gzip" => {
            let mut inflated = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
            let read = GzDecoder::new(body.as_slice())
                .take(limit as u64 + 1)
                .read_to_end(&mut inflated)
                .map_err(|err| DecodeError::Gzip(err.to_string()))?;
            if read > limit {
                return Err(DecodeError::TooLarge { limit });
            }
            Ok(inflated)
        }
        other => Err(DecodeError::Encoding(voicemon_core::validate::prefix(other, 64).to_owned())),
    }
}

/// One collector request message from `bytes`.
pub fn decode<T: prost::Message + Default + DeserializeOwned>(
    bytes: &[u8],
    encoding: Encoding,
) -> Result<T, DecodeError> {
    match encoding {
        Encoding::Protobuf => T::decode(bytes).map_err(|err| DecodeError::Protobuf(err.to_string())),
        // serde would also read a struct from a JSON array; OTLP/JSON is an object.
        Encoding::Json if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') => {
            Err(DecodeError::Json("an export request is a JSON object".into()))
        }
        Encoding::Json => serde_json::from_slice(bytes).map_err(|err| {
            DecodeError::Json(voicemon_core::validate::prefix(&err.to_string(), 256).to_owned())
        }),
    }
}

/// `google.rpc.Status`: the body of every OTLP/HTTP error answer.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Status {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

impl Status {
    /// `google.rpc.Code.INVALID_ARGUMENT`
    pub const INVALID_ARGUMENT: i32 = 3;
    /// `google.rpc.Code.PERMISSION_DENIED`
    pub const PERMISSION_DENIED: i32 = 7;
    /// `google.rpc.Code.RESOURCE_EXHAUSTED`
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    /// `google.rpc.Code.INTERNAL`
    pub const INTERNAL: i32 = 13;
    /// `google.rpc.Code.UNAVAILABLE`
    pub const UNAVAILABLE: i32 = 14;
    /// `google.rpc.Code.UNAUTHENTICATED`
    pub const UNAUTHENTICATED: i32 = 16;
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use std::io::Write;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn content_types_name_their_encoding() {
        assert_eq!(Encoding::from_content_type(Some("application/x-protobuf")), Some(Encoding::Protobuf));
        assert_eq!(
            Encoding::from_content_type(Some("Application/JSON; charset=utf-8")),
            Some(Encoding::Json)
        );
        assert_eq!(Encoding::from_content_type(Some("text/plain")), None);
        assert_eq!(Encoding::from_content_type(None), None);
    }

    #[test]
    fn gzip_bodies_are_inflated_within_the_limit() {
        let body = b"{\"resourceSpans\":[]}".to_vec();
        assert_eq!(inflate(gzip(&body), Some("gzip"), 1024).unwrap(), body);
        assert_eq!(inflate(body.clone(), None, 1024).unwrap(), body);
        // A bomb: 1 MiB of zeros in about a kilobyte.
        let bomb = gzip(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 4096);
        assert!(matches!(
            inflate(bomb, Some("gzip"), 64 * 1024),
            Err(DecodeError::TooLarge { limit: 65536 })
        ));
        assert!(matches!(inflate(body.clone(), Some("br"), 1024), Err(DecodeError::Encoding(_))));
        assert!(matches!(inflate(b"not gzip".to_vec(), Some("gzip"), 1024), Err(DecodeError::Gzip(_))));
    }

    #[test]
    fn both_encodings_decode_the_same_request() {
        let json = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"bot"}}]},
            "scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
            "name":"turn","startTimeUnixNano":"1700000000000000000","endTimeUnixNano":1700000001000000000,
            "attributes":[{"key":"turn.number","value":{"intValue":"3"}}]}]}]}]}"#;
        let from_json: ExportTraceServiceRequest = decode(json.as_bytes(), Encoding::Json).unwrap();
        let bytes = Encoding::Protobuf.encode(&from_json);
        let from_protobuf: ExportTraceServiceRequest = decode(&bytes, Encoding::Protobuf).unwrap();
        assert_eq!(from_json, from_protobuf);
        let span = &from_json.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.end_time_unix_nano, 1_700_000_001_000_000_000);
        assert!(decode::<ExportTraceServiceRequest>(b"\xff\xff\xff", Encoding::Protobuf).is_err());
        assert!(decode::<ExportTraceServiceRequest>(b"{", Encoding::Json).is_err());
        assert!(
            decode::<ExportTraceServiceRequest>(b" []", Encoding::Json).is_err(),
            "serde reads a struct from an array"
        );
    }
}
