//! Names a plan gives that end up in file names: the run name (the run
//! directory `<name>-<timestamp>`, and a sweep's directory), phase names
//! (each phase's llm-d report file) and the names of sweep axis values
//! (cell directories). They are checked when the plan is validated, so a
//! run never fails — or leaves a half-made results directory — because the
//! file system refused a name.

/// Longest run, phase or sweep value name, in characters. With the run
/// directory's `-<timestamp>` suffix (17 bytes) or the llm-d report file's
/// `benchmark_report_<index>_` prefix and `.json` suffix, names stay well
/// under the usual 255-byte limit of one file name.
pub const MAX_NAME_CHARS: usize = 200;

/// Longest file name most file systems accept, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// The characters a directory name made from a plan may hold.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Why `name` cannot start a directory name (`what` says which), if it
/// cannot: it must be 1 to [`MAX_NAME_CHARS`] ASCII letters, digits, `-`,
/// `_` and `.`, not starting with `.` (no hidden directory, no `.`/`..`).
pub fn directory_problem(name: &str, what: &str) -> Option<String> {
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Some(format!(
            "use letters, digits, '-', '_' and '.' only (it names {what})"
        ));
    }
    if name.starts_with('.') {
        return Some(format!("must not start with '.' (it names {what})"));
    }
    too_long(name, what)
}

/// Why `name` cannot name a phase, if it cannot: it must be non-empty,
/// without slashes, `@` (it separates a stress step's rate) or control
/// characters, and at most [`MAX_NAME_CHARS`] characters long.
pub fn phase_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.contains(['/', '\\', '@']) || name.chars().any(char::is_control) {
        return Some("must be non-empty, without slashes, '@' or control characters".into());
    }
    too_long(name, "the phase's llm-d report file")
}

fn too_long(name: &str, what: &str) -> Option<String> {
    let n = name.chars().count();
    (n > MAX_NAME_CHARS)
        .then(|| format!("{n} characters; at most {MAX_NAME_CHARS} characters (it names {what})"))
}
