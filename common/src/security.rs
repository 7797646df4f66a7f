//! Secrets shared by both ends of the agent ⇄ controller link: the join
//! token's rules and a [`Secret`] holder whose `Debug` output is redacted.
//!
//! The agent checks the token it reads with [`check_token`], the controller's
//! plan validation (stampede-plan) with the same function, so both refuse the
//! same tokens with the same words. Errors name the file or variable, never
//! the secret itself.

/// Shortest join token accepted (bytes): a guessable token is no token.
pub const MIN_TOKEN_BYTES: usize = 16;
/// Longest join token accepted (bytes); it travels in a gRPC header.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Largest certificate or key file read (bytes).
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Bytes that must not be shown: `Debug` prints `Secret(redacted)`, and
/// equality runs in time independent of where the bytes differ.
#[derive(Clone, Default)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wrap secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The secret bytes, for handing to TLS or a header.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Compare with `other` in time that depends only on the lengths.
    pub fn matches(&self, other: &[u8]) -> bool {
        constant_time_eq(&self.0, other)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.matches(&other.0)
    }
}

/// `a == b`, without an early exit at the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Check that a token read from `source` is usable; never shows the token.
pub fn check_token(bytes: &[u8], source: &str) -> Result<Secret, String> {
    let token = bytes.trim_ascii();
    if token.len() < MIN_TOKEN_BYTES {
        return Err(format!(
            "the join token in {source} has {} bytes; at least {MIN_TOKEN_BYTES} are required",
            token.len()
        ));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(format!(
            "the join token in {source} is longer than {MAX_TOKEN_BYTES} bytes"
        ));
    }
    if !token.iter().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the join token in {source} must be printable ASCII without spaces"
        ));
    }
    Ok(Secret::new(token.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_compared_fully() {
        let s = Secret::new(b"hunter2hunter2hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "Secret(redacted)");
        assert!(s.matches(b"hunter2hunter2hunter2"));
        assert!(!s.matches(b"hunter2hunter2hunter3"));
        assert!(!s.matches(b"hunter2"));
        assert!(!s.matches(b""));
    }

    #[test]
    fn tokens_are_trimmed_and_checked_without_being_shown() {
        let ok = check_token(b"  0123456789abcdef0123\n", "f").unwrap();
        assert_eq!(ok.expose(), b"0123456789abcdef0123");
        let short = check_token(b"short-secret", "f").unwrap_err();
        assert!(short.contains("at least 16"), "{short}");
        assert!(!short.contains("short-secret"), "{short}");
        assert!(check_token(b"0123456789abcdef 0123", "f").is_err());
    }
}
