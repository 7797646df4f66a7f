//! Durations as human-readable strings (`"20ms"`, `"1m 30s"`) in TOML and JSON.
//!
//! One spelling everywhere: the config file, the fault admin endpoint and the flags all use
//! `humantime`, so a value copied from one into another means the same thing.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Serializes `d` as a humantime string, e.g. `"1s 500ms"`.
pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// Parses a humantime string, e.g. `"250us"` or `"2s"`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
}

/// The same for `Option<Duration>` fields (absent or a humantime string).
pub(crate) mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Parses an optional humantime string.
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => humantime::parse_duration(&text)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}"))),
        }
    }
}
