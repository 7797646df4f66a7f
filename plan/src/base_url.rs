//! Base URLs of OpenAI-compatible servers (`target.url`, `serving.url`).
//! Stampede appends the API paths itself — `/v1/chat/completions` or
//! `/v1/completions` for requests, `/v1/models` to record and probe the
//! server — so a base URL may carry a gateway's route prefix
//! (`http://gw/llama`) but not the `/v1` itself: with it, every request
//! would go to `/v1/v1/...` and fail.

/// Why `url` cannot be a base URL because its path ends in `/v1`, with the
/// base URL to use instead.
pub fn v1_problem(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest[rest.find('/')?..].trim_end_matches('/');
    if !path.ends_with("/v1") {
        return None;
    }
    let base = url.trim_end_matches('/').strip_suffix("/v1")?;
    Some(format!(
        "the base URL must not end in /v1 — stampede appends /v1/chat/completions; use {:?}",
        crate::quote::excerpt(base)
    ))
}

#[cfg(test)]
mod tests {
    use super::v1_problem;

    #[test]
    fn only_a_path_ending_in_v1_is_a_problem() {
        for ok in [
            "http://h:8000",
            "http://h:8000/",
            "http://v1",
            "http://v1:80/",
            "http://gw/llama",
            "http://gw/v1beta",
            "http://gw/xv1",
        ] {
            assert_eq!(v1_problem(ok), None, "{ok}");
        }
        for (bad, base) in [
            ("http://h:8000/v1", "http://h:8000"),
            ("http://h:8000/v1//", "http://h:8000"),
            ("https://gw/llama/v1", "https://gw/llama"),
            ("http://v1/v1", "http://v1"),
        ] {
            let reason = v1_problem(bad).unwrap_or_default();
            assert!(
                reason.ends_with(&format!("use {base:?}")),
                "{bad}: {reason}"
            );
        }
    }
}
