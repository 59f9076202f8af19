//! A string that never prints itself.
//!
//! Credentials travel through `Settings`, errors and logs; wrapping them means a stray `{:?}` or
//! `{}` can only ever show `[redacted]`.

use std::fmt;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call sites are few and greppable on purpose.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let secret = Secret::new("s3cr3t-value");
        assert!(!format!("{secret}").contains("s3cr3t"));
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        assert_eq!(secret.expose(), "s3cr3t-value");
    }
}
