//! Each accepted connection, with one correction to what hyper writes.
//!
//! hyper answers a request it cannot read (a URI over 64 KiB: 414; a head over its
//! buffer or with too many headers: 431) itself, before any handler runs, with an empty
//! body. [`Connection`] (which `startup` wraps around every accepted socket for the accept
//! loop in `connections`) gives those answers the API's JSON error body
//! (`{"error":{"code","message"}}`) by rewriting exactly that head on its way out.

use crate::api::error::ApiError;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

impl<T> Connection<T> {
    /// `inner` with the correction.
    pub fn new(inner: T) -> Connection<T> {
        Connection { inner, pending: Vec::new() }
    }
}

/// One connection: reads pass through; a write that is hyper's own bodiless 414 or 431
/// is replaced by the same head with a JSON body, written before anything else.
#[derive(Debug)]
pub struct Connection<T> {
    inner: T,
    /// What is left to write of a replaced answer.
    pending: Vec<u8>,
}

impl<T: AsyncWrite + Unpin> Connection<T> {
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Connection<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Connection<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        let Some(replaced) = with_json_body(buf) else {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        };
        self.pending = replaced;
        if let Poll::Ready(Err(err)) = self.poll_pending(cx) {
            return Poll::Ready(Err(err));
        }
        // The caller's bytes are taken; what remains of their replacement is written
        // before anything else, and flushed by `poll_flush` / `poll_shutdown`.
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// hyper's own answer to a request it could not read (its status line, headers with
/// `content-length: 0`, nothing after the head), with the JSON error body; `None` for
/// any other bytes.
fn with_json_body(written: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(written).ok()?;
    let (status_line, rest) = text.split_once("\r\n")?;
    let error = match status_line {
        "HTTP/1.1 414 URI Too Long" => ApiError::UriTooLong,
        "HTTP/1.1 431 Request Header Fields Too Large" => ApiError::HeadersTooLarge,
        _ => return None,
    };
    let headers: Vec<&str> = rest.strip_suffix("\r\n\r\n")?.split("\r\n").collect();
    let empty = |line: &&str| line.eq_ignore_ascii_case("content-length: 0");
    if !headers.iter().any(empty) {
        return None;
    }
    let body = serde_json::to_string(&error.body()).unwrap_or_default();
    let mut answer = format!("{status_line}\r\n");
    for line in headers.iter().filter(|line| !empty(line)) {
        answer.push_str(line);
        answer.push_str("\r\n");
    }
    answer.push_str("content-type: application/json\r\nx-content-type-options: nosniff\r\n");
    answer.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    Some(answer.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bodiless_431_gets_the_json_error_and_keeps_its_other_headers() {
        let head = "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 06:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(with_json_body(head.as_bytes()).expect("replaced")).expect("text");
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "{head}");
        assert!(head.contains("date: Mon, 07 Dec 2026 06:00:00 GMT"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(json["error"]["code"], "headers_too_large");
    }

    #[test]
    fn hypers_bodiless_414_gets_the_json_error() {
        let head = "HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        let answer = String::from_utf8(with_json_body(head.as_bytes()).expect("replaced")).expect("text");
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
        assert_eq!(json["error"]["code"], "uri_too_long");
    }

    #[test]
    fn every_other_write_passes_untouched() {
        for written in [
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n",
            "HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n{\"a\":1}",
            "{\"error\": {\"code\": \"uri_too_long\"}}",
        ] {
            assert_eq!(with_json_body(written.as_bytes()), None, "{written}");
        }
    }
}
