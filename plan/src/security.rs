//! Agent ⇄ controller security settings: the `[agents]` keys for mTLS and the
//! join token, validated like the rest of the plan.
//!
//! Key material and the token come only from files or environment variables
//! (never from the plan text or a command-line value), are read once during
//! validation, and are held in a [`Secret`] whose `Debug` output is redacted,
//! so a logged plan or error never shows them. Errors name the key and the
//! file or variable, never the secret itself.

use crate::PlanError;
use serde::{Deserialize, Serialize};
use stampede_common::security::{MAX_PEM_BYTES, Secret, check_token};
use std::path::{Path, PathBuf};

/// `[agents] tls = { ca, cert, key }` as written (paths relative to the plan file).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM file of the CA that signs agents' client certificates.
    pub ca: PathBuf,
    /// PEM file of the controller's certificate chain.
    pub cert: PathBuf,
    /// PEM file of the controller's private key.
    pub key: PathBuf,
}

/// A PEM file read during validation.
#[derive(Debug, Clone, PartialEq)]
pub struct PemFile {
    /// Where it was read from (resolved against the plan's directory).
    pub path: PathBuf,
    /// Its content.
    pub pem: Vec<u8>,
}

/// The controller's TLS material.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// CA that client certificates must chain to.
    pub ca: PemFile,
    /// The controller's certificate chain.
    pub cert: PemFile,
    /// Where the key was read from.
    pub key_path: PathBuf,
    /// The controller's private key (PEM).
    pub key: Secret,
}

/// Validated security settings of the agents' gRPC endpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Security {
    /// mTLS material; `None` serves plaintext.
    pub tls: Option<TlsFiles>,
    /// Token every agent must present (`authorization: Bearer …`).
    pub join_token: Option<Secret>,
    /// Serve plaintext on a non-loopback address.
    pub allow_plaintext: bool,
}

/// The security keys of `[agents]`, as written.
#[derive(Debug, Clone, Copy)]
pub struct RawSecurity<'a> {
    /// `agents.tls`.
    pub tls: Option<&'a RawTls>,
    /// `agents.join_token_env`.
    pub join_token_env: Option<&'a str>,
    /// `agents.join_token_file`.
    pub join_token_file: Option<&'a Path>,
    /// `agents.allow_plaintext`.
    pub allow_plaintext: Option<bool>,
    /// Whether the agents are remote (the keys apply to remote agents only).
    pub remote: bool,
}

fn invalid(
    plan: &Path,
    key: &str,
    value: impl Into<String>,
    reason: impl Into<String>,
) -> PlanError {
    PlanError::Invalid {
        path: plan.to_path_buf(),
        key: key.to_string(),
        value: value.into(),
        reason: reason.into(),
    }
}

/// Resolve `file` against the plan's directory.
fn resolve(plan: &Path, file: &Path) -> PathBuf {
    plan.parent()
        .map_or_else(|| file.to_path_buf(), |dir| dir.join(file))
}

/// Read a file of at most [`MAX_PEM_BYTES`]; errors name `key` and the file.
fn read_bounded(plan: &Path, key: &str, file: &Path) -> Result<(PathBuf, Vec<u8>), PlanError> {
    use std::io::Read;
    let full = resolve(plan, file);
    let shown = format!("{:?}", file.display().to_string());
    let mut bytes = Vec::new();
    std::fs::File::open(&full)
        .and_then(|f| f.take(MAX_PEM_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| {
            invalid(
                plan,
                key,
                &shown,
                format!("cannot read {}: {e}", full.display()),
            )
        })?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(invalid(
            plan,
            key,
            &shown,
            format!("{} is larger than {MAX_PEM_BYTES} bytes", full.display()),
        ));
    }
    Ok((full, bytes))
}

fn has_pem(bytes: &[u8], label_suffix: &[u8]) -> bool {
    bytes.windows(11).enumerate().any(|(i, w)| {
        w == b"-----BEGIN "
            && bytes[i + 11..]
                .split(|b| *b == b'-')
                .next()
                .is_some_and(|label| label.ends_with(label_suffix))
    })
}

fn pem_file(plan: &Path, key: &str, file: &Path) -> Result<PemFile, PlanError> {
    let (path, pem) = read_bounded(plan, key, file)?;
    if !has_pem(&pem, b"CERTIFICATE") {
        return Err(invalid(
            plan,
            key,
            format!("{:?}", file.display().to_string()),
            format!("no PEM certificate in {}", path.display()),
        ));
    }
    Ok(PemFile { path, pem })
}

/// Validate the security keys of `[agents]` (`plan` names the plan file).
pub fn validate(plan: &Path, raw: RawSecurity<'_>) -> Result<Security, PlanError> {
    use crate::quote::written;
    let set = [
        ("agents.tls", raw.tls.map(written)),
        ("agents.join_token_env", raw.join_token_env.map(written)),
        ("agents.join_token_file", raw.join_token_file.map(written)),
        (
            "agents.allow_plaintext",
            raw.allow_plaintext.map(|b| b.to_string()),
        ),
    ];
    if let (false, Some((key, Some(value)))) =
        (raw.remote, set.into_iter().find(|(_, v)| v.is_some()))
    {
        return Err(invalid(
            plan,
            key,
            value,
            "applies to remote agents only (`agents.remote`); local agents talk to the controller inside its own process over loopback",
        ));
    }
    let tls = match raw.tls {
        None => None,
        Some(t) => {
            let ca = pem_file(plan, "agents.tls.ca", &t.ca)?;
            let cert = pem_file(plan, "agents.tls.cert", &t.cert)?;
            let (key_path, key) = read_bounded(plan, "agents.tls.key", &t.key)?;
            if !has_pem(&key, b"PRIVATE KEY") {
                return Err(invalid(
                    plan,
                    "agents.tls.key",
                    format!("{:?}", t.key.display().to_string()),
                    format!("no PEM private key in {}", key_path.display()),
                ));
            }
            Some(TlsFiles {
                ca,
                cert,
                key_path,
                key: Secret::new(key),
            })
        }
    };
    let join_token = match (raw.join_token_env, raw.join_token_file) {
        (Some(_), Some(file)) => {
            return Err(invalid(
                plan,
                "agents.join_token_file",
                crate::quote::written(file),
                "give either `agents.join_token_env` or `agents.join_token_file`, not both",
            ));
        }
        (Some(var), None) => {
            let shown = format!("{var:?}");
            if !crate::validate::is_env_name(var) {
                return Err(invalid(
                    plan,
                    "agents.join_token_env",
                    &shown,
                    "not an environment variable name",
                ));
            }
            let value = std::env::var_os(var).ok_or_else(|| {
                invalid(
                    plan,
                    "agents.join_token_env",
                    &shown,
                    "not set in the controller's environment",
                )
            })?;
            let token = check_token(value.as_encoded_bytes(), &format!("${var}"))
                .map_err(|reason| invalid(plan, "agents.join_token_env", &shown, reason))?;
            Some(token)
        }
        (None, Some(file)) => {
            let shown = format!("{:?}", file.display().to_string());
            let (full, bytes) = read_bounded(plan, "agents.join_token_file", file)?;
            let token = check_token(&bytes, &full.display().to_string())
                .map_err(|reason| invalid(plan, "agents.join_token_file", &shown, reason))?;
            Some(token)
        }
        (None, None) => None,
    };
    Ok(Security {
        tls,
        join_token,
        allow_plaintext: raw.allow_plaintext.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_labels_are_recognised() {
        assert!(has_pem(b"x\n-----BEGIN CERTIFICATE-----\n", b"CERTIFICATE"));
        assert!(has_pem(b"-----BEGIN PRIVATE KEY-----", b"PRIVATE KEY"));
        assert!(has_pem(b"-----BEGIN EC PRIVATE KEY-----", b"PRIVATE KEY"));
        assert!(!has_pem(b"-----BEGIN CERTIFICATE-----", b"PRIVATE KEY"));
        assert!(!has_pem(b"-----BEGIN ", b"CERTIFICATE"));
    }

    #[test]
    fn local_agents_refuse_security_keys() {
        let raw = RawSecurity {
            tls: None,
            join_token_env: Some("X"),
            join_token_file: None,
            allow_plaintext: None,
            remote: false,
        };
        let e = validate(Path::new("p.toml"), raw).unwrap_err().to_string();
        assert!(
            e.contains("agents.join_token_env") && e.contains("remote"),
            "{e}"
        );
    }
}
