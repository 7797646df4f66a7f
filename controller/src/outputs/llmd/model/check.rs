//! The bounds of the report format that JSON types cannot carry (a count of
//! at least one, a non-negative deviation, a positive rate), checked after
//! parsing so that a report breaking one is refused with the JSON path and
//! the value, like a parse error.

/// A broken bound: where, the value found, and the rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path} = {value}: {rule}")]
pub struct Violation {
    /// JSON path (`results.request_performance.aggregate.requests.total`).
    pub path: String,
    /// The value found, as written.
    pub value: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

/// A part of the report that checks its bounds; `path` is its own JSON path.
pub(super) trait Check {
    fn check(&self, path: &str) -> Result<(), Violation>;
}

impl<T: Check> Check for Option<T> {
    fn check(&self, path: &str) -> Result<(), Violation> {
        self.as_ref().map_or(Ok(()), |v| v.check(path))
    }
}

impl<T: Check> Check for Vec<T> {
    fn check(&self, path: &str) -> Result<(), Violation> {
        for (i, item) in self.iter().enumerate() {
            item.check(&format!("{path}[{i}]"))?;
        }
        Ok(())
    }
}

/// The path of field `key` of the object at `path` (`""`: the report).
pub(super) fn field(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `Check` for a type whose bounds are all in the listed fields (`<T>`
/// first for a type generic over a checked `T`).
macro_rules! check_fields {
    (<$g:ident> $ty:ty: $($f:ident),+ $(,)?) => {
        impl<$g: $crate::outputs::llmd::model::check::Check> $crate::outputs::llmd::model::check::Check for $ty {
            fn check(&self, path: &str) -> Result<(), $crate::outputs::llmd::model::Violation> {
                use $crate::outputs::llmd::model::check::{Check, field};
                $( Check::check(&self.$f, &field(path, stringify!($f)))?; )+
                Ok(())
            }
        }
    };
    ($ty:ty: $($f:ident),+ $(,)?) => {
        impl $crate::outputs::llmd::model::check::Check for $ty {
            fn check(&self, path: &str) -> Result<(), $crate::outputs::llmd::model::Violation> {
                use $crate::outputs::llmd::model::check::{Check, field};
                $( Check::check(&self.$f, &field(path, stringify!($f)))?; )+
                Ok(())
            }
        }
    };
}
pub(super) use check_fields;

fn bound(
    path: &str,
    key: &str,
    value: Option<f64>,
    holds: fn(f64) -> bool,
    rule: &'static str,
) -> Result<(), Violation> {
    match value {
        Some(v) if !holds(v) => Err(Violation {
            path: field(path, key),
            value: v.to_string(),
            rule,
        }),
        _ => Ok(()),
    }
}

/// Field `key` (when present) is ≥ 0.
pub(super) fn non_negative(
    path: &str,
    key: &str,
    value: impl Into<Option<f64>>,
) -> Result<(), Violation> {
    bound(path, key, value.into(), |v| v >= 0.0, "must be at least 0")
}

/// Field `key` (when present) is > 0.
pub(super) fn positive(
    path: &str,
    key: &str,
    value: impl Into<Option<f64>>,
) -> Result<(), Violation> {
    bound(
        path,
        key,
        value.into(),
        |v| v > 0.0,
        "must be greater than 0",
    )
}

/// Field `key` (when present) is ≥ 1.
pub(super) fn at_least_one(
    path: &str,
    key: &str,
    value: impl Into<Option<f64>>,
) -> Result<(), Violation> {
    bound(path, key, value.into(), |v| v >= 1.0, "must be at least 1")
}
