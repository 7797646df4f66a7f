//! `controller certs`: a development CA, a controller certificate and an
//! agent certificate, plus a join token, so mTLS can be switched on without
//! an outside PKI. Optionally the same files as Kubernetes Secrets.
//!
//! Keys and the token are written with mode 0600 and never printed; existing
//! files are not overwritten unless asked, so a second run cannot silently
//! replace the CA agents already trust.

use crate::model::Status;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// Why certificates could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// A `--host` value is neither an IP address nor a DNS name.
    #[error("--host {host:?}: {reason}")]
    BadHost {
        /// The value.
        host: String,
        /// Why it is refused.
        reason: String,
    },
    /// A name for the Kubernetes objects is invalid.
    #[error(
        "{flag} {value:?}: must be a DNS-1123 label (lowercase letters, digits, '-', at most 63 characters)"
    )]
    BadName {
        /// The flag.
        flag: &'static str,
        /// The value.
        value: String,
    },
    /// Output files exist already.
    #[error("{} exists already; pass --force to replace it (agents trusting the old CA will then be refused)", .0.display())]
    Exists(PathBuf),
    /// Generating a key or certificate failed.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// Which item.
        what: &'static str,
        /// Cause.
        source: rcgen::Error,
    },
    /// Writing a file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

impl CertsError {
    /// Failing to generate or write is a failed command; the rest is bad input.
    pub fn status(&self) -> Status {
        match self {
            CertsError::Generate { .. } | CertsError::Write { .. } => Status::RunFailed,
            _ => Status::BadInput,
        }
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct CertsOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Subject alternative names of the controller certificate (DNS names or IPs).
    pub hosts: Vec<String>,
    /// Also write `secrets.yaml` with Secrets `<name>-controller` and `<name>-agent`.
    pub k8s_secret: Option<String>,
    /// Namespace of the Secrets.
    pub namespace: String,
    /// Replace existing files.
    pub force: bool,
}

/// The files `controller certs` writes into its directory.
pub const FILES: [&str; 8] = [
    "ca.pem",
    "ca.key",
    "controller.pem",
    "controller.key",
    "agent.pem",
    "agent.key",
    "join-token",
    "secrets.yaml",
];

/// Hosts used when none is given.
pub const DEFAULT_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

fn gen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> CertsError {
    move |source| CertsError::Generate { what, source }
}

fn check_host(host: &str) -> Result<(), CertsError> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let ok_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let labels = host.strip_prefix("*.").unwrap_or(host);
    if host.len() > 253 || !labels.split('.').all(ok_label) {
        return Err(CertsError::BadHost {
            host: host.to_string(),
            reason: "not an IP address or a DNS name".into(),
        });
    }
    Ok(())
}

fn check_k8s_name(flag: &'static str, value: &str) -> Result<(), CertsError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(CertsError::BadName {
            flag,
            value: value.to_string(),
        })
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "stampede");
    dn.push(DnType::CommonName, cn);
    dn
}

/// Generated PEM texts and the token.
pub struct Generated {
    /// CA certificate.
    pub ca_pem: String,
    /// CA key.
    pub ca_key: String,
    /// Controller certificate.
    pub controller_pem: String,
    /// Controller key.
    pub controller_key: String,
    /// Agent certificate.
    pub agent_pem: String,
    /// Agent key.
    pub agent_key: String,
    /// Join token (64 hex digits).
    pub join_token: String,
}

/// Generate a CA, a controller certificate for `hosts` and an agent certificate.
pub fn generate(hosts: &[String]) -> Result<Generated, CertsError> {
    for h in hosts {
        check_host(h)?;
    }
    let ca_key = KeyPair::generate().map_err(gen_err("the CA key"))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("the CA"))?;
    ca.distinguished_name = name("stampede development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(gen_err("the CA"))?;
    let issuer = Issuer::new(ca, &ca_key);

    let leaf = |cn: &str,
                sans: Vec<String>,
                usage: ExtendedKeyUsagePurpose,
                what: &'static str|
     -> Result<(String, String), CertsError> {
        let key = KeyPair::generate().map_err(gen_err(what))?;
        let mut p = CertificateParams::new(sans).map_err(gen_err(what))?;
        p.distinguished_name = name(cn);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![usage];
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &issuer).map_err(gen_err(what))?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (controller_pem, controller_key) = leaf(
        "stampede controller",
        hosts.to_vec(),
        ExtendedKeyUsagePurpose::ServerAuth,
        "the controller certificate",
    )?;
    let (agent_pem, agent_key) = leaf(
        "stampede agent",
        vec!["stampede-agent".to_string()],
        ExtendedKeyUsagePurpose::ClientAuth,
        "the agent certificate",
    )?;
    let token: [u8; 32] = rand::random();
    let join_token = token.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Generated {
        ca_pem: ca_cert.pem(),
        ca_key: ca_key.serialize_pem(),
        controller_pem,
        controller_key,
        agent_pem,
        agent_key,
        join_token,
    })
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Two Kubernetes Secrets: `<name>-controller` (CA, controller certificate and
/// key, token) and `<name>-agent` (CA, agent certificate and key, token).
pub fn secrets_yaml(g: &Generated, name: &str, namespace: &str) -> String {
    let secret = |suffix: &str, entries: &[(&str, &str)]| {
        let mut s = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}-{suffix}\n  namespace: {namespace}\n  labels:\n    app.kubernetes.io/part-of: stampede\ntype: Opaque\ndata:\n"
        );
        for (k, v) in entries {
            s.push_str(&format!("  {k}: {}\n", b64(v)));
        }
        s
    };
    let token = format!("{}\n", g.join_token);
    format!(
        "# Generated by `controller certs`. Contains private keys: do not commit.\n{}---\n{}",
        secret(
            "controller",
            &[
                ("ca.pem", &g.ca_pem),
                ("controller.pem", &g.controller_pem),
                ("controller.key", &g.controller_key),
                ("join-token", &token),
            ]
        ),
        secret(
            "agent",
            &[
                ("ca.pem", &g.ca_pem),
                ("agent.pem", &g.agent_pem),
                ("agent.key", &g.agent_key),
                ("join-token", &token),
            ]
        )
    )
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), CertsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| CertsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mode = if private { 0o600 } else { 0o644 };
    // A replaced file keeps its old mode on open; remove it first.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)
}

/// Generate everything and write it into `opts.out`; returns the files written.
pub fn run(opts: &CertsOptions) -> Result<Vec<PathBuf>, CertsError> {
    if let Some(n) = &opts.k8s_secret {
        check_k8s_name("--k8s-secret", n)?;
        check_k8s_name("--namespace", &opts.namespace)?;
    }
    let hosts: Vec<String> = if opts.hosts.is_empty() {
        DEFAULT_HOSTS.iter().map(|h| (*h).to_string()).collect()
    } else {
        opts.hosts.clone()
    };
    let names: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|f| *f != "secrets.yaml" || opts.k8s_secret.is_some())
        .collect();
    if !opts.force
        && let Some(existing) = names.iter().map(|f| opts.out.join(f)).find(|p| p.exists())
    {
        return Err(CertsError::Exists(existing));
    }
    let g = generate(&hosts)?;
    std::fs::create_dir_all(&opts.out).map_err(|source| CertsError::Write {
        path: opts.out.clone(),
        source,
    })?;
    let token = format!("{}\n", g.join_token);
    let mut files: Vec<(&str, &str, bool)> = vec![
        ("ca.pem", &g.ca_pem, false),
        ("ca.key", &g.ca_key, true),
        ("controller.pem", &g.controller_pem, false),
        ("controller.key", &g.controller_key, true),
        ("agent.pem", &g.agent_pem, false),
        ("agent.key", &g.agent_key, true),
        ("join-token", &token, true),
    ];
    let yaml = opts
        .k8s_secret
        .as_deref()
        .map(|n| secrets_yaml(&g, n, &opts.namespace));
    if let Some(y) = &yaml {
        files.push(("secrets.yaml", y, true));
    }
    let mut written = Vec::new();
    for (file, text, private) in files {
        let path = opts.out.join(file);
        write(&path, text, private)?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_keys_private_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let opts = CertsOptions {
            out: dir.path().join("certs"),
            hosts: vec!["controller.example".into(), "10.0.0.7".into()],
            k8s_secret: Some("stampede-tls".into()),
            namespace: "bench".into(),
            force: false,
        };
        let written = run(&opts).unwrap();
        assert_eq!(written.len(), FILES.len());
        for p in &written {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            let name = p.file_name().unwrap().to_string_lossy();
            let private = name.ends_with(".key") || name == "join-token" || name == "secrets.yaml";
            assert_eq!(mode, if private { 0o600 } else { 0o644 }, "{name}");
        }
        let token = std::fs::read_to_string(opts.out.join("join-token")).unwrap();
        assert_eq!(token.trim().len(), 64);
        let yaml = std::fs::read_to_string(opts.out.join("secrets.yaml")).unwrap();
        assert!(yaml.contains("name: stampede-tls-agent") && yaml.contains("namespace: bench"));
        assert!(
            !yaml.contains("BEGIN"),
            "PEM must be base64 inside the Secret"
        );

        let again = run(&opts).unwrap_err();
        assert!(matches!(again, CertsError::Exists(_)), "{again}");
        let forced = CertsOptions {
            force: true,
            ..opts
        };
        assert!(run(&forced).is_ok());
    }

    #[test]
    fn bad_hosts_and_names_are_named() {
        let e = generate(&["bad host!".into()]).err().unwrap().to_string();
        assert!(e.contains("bad host!"), "{e}");
        assert!(check_k8s_name("--k8s-secret", "Upper").is_err());
        assert!(check_host("*.svc.cluster.local").is_ok());
        assert!(check_host("::1").is_ok());
    }
}
