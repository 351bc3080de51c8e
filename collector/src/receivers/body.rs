//! Reading request bodies: a limit on the bytes read, gzip, and a limit after decompression.

use std::io::Read;

use axum::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("unsupported content encoding {0:?}")]
    UnsupportedEncoding(String),
    #[error("body is not valid gzip: {0}")]
    BadGzip(String),
    #[error("reading the request body: {0}")]
    Read(String),
}

impl BodyError {
    pub fn http_status(&self) -> u16 {
        match self {
            BodyError::TooLarge(_) => 413,
            BodyError::UnsupportedEncoding(_) => 415,
            BodyError::BadGzip(_) | BodyError::Read(_) => 400,
        }
    }
}

/// Reads the whole body, decompressing gzip; no more than `max` bytes before or after decompression.
/// An uncompressed body that arrived in one frame (most do) is hyper's buffer itself, not a copy:
/// `SpanBatch::parse` reads the request in place, so the receiver never copies an OTLP body.
pub async fn read_body(
    body: Body,
    content_encoding: Option<&str>,
    max: usize,
) -> Result<Bytes, BodyError> {
    let gzip = match content_encoding.map(|e| e.trim().to_ascii_lowercase()) {
        None => false,
        Some(e) if e.is_empty() || e == "identity" => false,
        Some(e) if e == "gzip" || e == "x-gzip" => true,
        Some(other) => return Err(BodyError::UnsupportedEncoding(other)),
    };
    let raw = Limited::new(body, max).collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            BodyError::TooLarge(max)
        } else {
            BodyError::Read(e.to_string())
        }
    })?;
    let raw = raw.to_bytes();
    if !gzip {
        return Ok(raw);
    }
    gunzip(&raw, max).map(Bytes::from)
}

/// Decompresses gzip, refusing output larger than `max` (a gzip bomb stops at `max + 1` bytes).
pub fn gunzip(raw: &[u8], max: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(raw)
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::BadGzip(e.to_string()))?;
    if out.len() > max {
        return Err(BodyError::TooLarge(max));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = enc.write_all(data);
        enc.finish().unwrap_or_default()
    }

    #[test]
    fn gunzip_enforces_limit_after_decompression() {
        let bomb = gz(&vec![0u8; 1 << 20]);
        assert!(bomb.len() < 10_000, "compresses well");
        assert!(
            matches!(gunzip(&bomb, 1000), Err(BodyError::TooLarge(1000))),
            "decompressed size is limited"
        );
        assert_eq!(
            gunzip(&gz(b"hello"), 5).ok(),
            Some(b"hello".to_vec()),
            "exactly at the limit is fine"
        );
        assert!(
            matches!(gunzip(b"not gzip", 100), Err(BodyError::BadGzip(_))),
            "garbage is a 400"
        );
        let truncated = gz(b"hello world hello world");
        let cut = truncated.get(..truncated.len() / 2).unwrap_or_default();
        assert!(
            matches!(gunzip(cut, 100), Err(BodyError::BadGzip(_))),
            "truncated gzip is a 400"
        );
    }

    #[tokio::test]
    async fn reads_with_limits_and_encodings() {
        assert!(matches!(
            read_body(Body::from(vec![1u8; 11]), None, 10).await,
            Err(BodyError::TooLarge(10))
        ));
        assert_eq!(
            read_body(Body::from(vec![1u8; 10]), Some("identity"), 10)
                .await
                .ok(),
            Some(Bytes::from(vec![1u8; 10]))
        );
        assert!(matches!(
            read_body(Body::from("x"), Some("br"), 10).await,
            Err(BodyError::UnsupportedEncoding(_))
        ));
        assert_eq!(
            read_body(Body::from(gz(b"abc")), Some("gzip"), 100)
                .await
                .ok(),
            Some(Bytes::from_static(b"abc"))
        );
    }
}
