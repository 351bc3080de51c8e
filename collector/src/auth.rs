//! Optional bearer tokens, read from files, compared in constant time.
//!
//! The token is kept as its SHA-256 digest and a presented token is hashed before the comparison, so the
//! comparison (`subtle`, constant time) always runs over 32 bytes: how long it takes says nothing about
//! how many leading bytes matched, nor about the configured token's length (a plain constant-time
//! comparison of byte strings returns early when the lengths differ).

use std::path::Path;

use ring::digest::{digest, Digest, SHA256};
use subtle::ConstantTimeEq;

/// A bearer token check. `None` inside means no token is required.
#[derive(Clone, Default)]
pub struct BearerAuth {
    /// SHA-256 of the configured token.
    token: Option<Digest>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("reading token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("token file {0} is empty")]
    Empty(String),
}

impl BearerAuth {
    pub fn none() -> Self {
        Self { token: None }
    }

    pub fn from_token(token: &str) -> Self {
        Self {
            token: Some(digest(&SHA256, token.as_bytes())),
        }
    }

    /// Reads the token from `path` (surrounding whitespace is ignored), or requires none when `path` is `None`.
    pub fn from_file(path: Option<&Path>) -> Result<Self, AuthConfigError> {
        let Some(path) = path else {
            return Ok(Self::none());
        };
        let text = std::fs::read_to_string(path).map_err(|source| AuthConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(AuthConfigError::Empty(path.display().to_string()));
        }
        Ok(Self::from_token(token))
    }

    pub fn is_required(&self) -> bool {
        self.token.is_some()
    }

    /// Checks an `Authorization` header value.
    pub fn allows(&self, authorization: Option<&[u8]>) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let Some(header) = authorization else {
            return false;
        };
        let Some(presented) = strip_bearer(header) else {
            return false;
        };
        let presented = digest(&SHA256, presented);
        presented.as_ref().ct_eq(expected.as_ref()).into()
    }
}

fn strip_bearer(header: &[u8]) -> Option<&[u8]> {
    let scheme = header.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(header.get(7..)?.trim_ascii())
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

    #[test]
    fn checks_bearer_tokens() {
        let auth = BearerAuth::from_token("s3cret");
        let cases: &[(Option<&[u8]>, bool, &str)] = &[
            (Some(b"Bearer s3cret"), true, "exact token"),
            (Some(b"bearer s3cret"), true, "scheme is case-insensitive"),
            (Some(b"Bearer s3cre"), false, "prefix of the token"),
            (Some(b"Bearer s3cretX"), false, "token with extra byte"),
            (Some(b"Bearer s3creT"), false, "last byte differs"),
            (Some(b"Bearer "), false, "empty token"),
            (Some(b"Bearer  s3cret "), true, "surrounding blanks"),
            (Some(b"Basic s3cret"), false, "wrong scheme"),
            (Some(b"s3cret"), false, "no scheme"),
            (None, false, "no header"),
        ];
        for (header, want, why) in cases {
            assert_eq!(auth.allows(*header), *want, "{why}");
        }
        assert!(
            BearerAuth::none().allows(None),
            "no token configured lets everything in"
        );
    }
}
