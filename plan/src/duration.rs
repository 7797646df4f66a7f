//! Human durations in plans (`"500ms"`, `"2m 30s"`), parsed with `humantime`
//! so a bad value is reported with the key that held it. The text is kept as
//! written, so an error about a duration quotes it as the plan does.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// A duration written in a plan as a human string.
#[derive(Debug, Clone)]
pub struct HumanDuration {
    duration: Duration,
    /// The string as written in the plan.
    text: String,
}

impl HumanDuration {
    /// The inner duration.
    pub fn get(&self) -> Duration {
        self.duration
    }

    /// The value as written, quoted (and cut short when huge), for errors.
    pub fn shown(&self) -> String {
        crate::quote::excerpt(&format!("{:?}", self.text)).into_owned()
    }
}

impl From<Duration> for HumanDuration {
    /// A duration written the way `humantime` formats it.
    fn from(duration: Duration) -> Self {
        HumanDuration {
            duration,
            text: humantime::format_duration(duration).to_string(),
        }
    }
}

/// Equal durations are equal however they were written.
impl PartialEq for HumanDuration {
    fn eq(&self, other: &Self) -> bool {
        self.duration == other.duration
    }
}

impl Eq for HumanDuration {}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match humantime::parse_duration(&text) {
            Ok(duration) => Ok(HumanDuration { duration, text }),
            Err(e) => Err(serde::de::Error::custom(format!(
                "invalid duration {}: {e} (write e.g. \"500ms\", \"30s\", \"2m\")",
                crate::quote::excerpt(&format!("{text:?}"))
            ))),
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// How an error quotes the duration `value` of a key: as written, or (when
/// the plan leaves the key out) the way `humantime` writes it.
pub fn shown(written: Option<&HumanDuration>, value: Duration) -> String {
    written.map_or_else(|| HumanDuration::from(value).shown(), HumanDuration::shown)
}
