//! Reading a plan: the file, its includes, then validation.

use crate::{Plan, PlanError, RawPlan};
use std::path::Path;

/// Read, parse and validate a plan file.
pub fn load(path: &Path) -> Result<Plan, PlanError> {
    parse(&read(path)?, path)?.validate(path)
}

/// Read, parse and validate a plan file without reading the dataset and
/// trace files it names: for the plan copy in a past run's directory, which
/// sits away from them.
pub fn load_without_files(path: &Path) -> Result<Plan, PlanError> {
    parse(&read(path)?, path)?.validate_without_files(path)
}

fn read(path: &Path) -> Result<String, PlanError> {
    std::fs::read_to_string(path).map_err(|source| PlanError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Parse plan text read from `path`: `path` is used in messages and to find the fragments
/// the plan includes (see [`crate::include`]).
pub fn parse(text: &str, path: &Path) -> Result<RawPlan, PlanError> {
    if let Ok(table) = text.parse::<toml::Table>()
        && let Some(merged) = crate::include::resolve_table(table, path)?
    {
        return merged
            .try_into()
            .map_err(|e| PlanError::toml(path, None, e));
    }
    toml::from_str(text).map_err(|e| PlanError::toml(path, Some(text), e))
}
