//! The agent's side of joining securely: TLS to the controller (verified
//! against a given CA, with the agent's client certificate), the join token
//! in every call's `authorization` header, and a refusal to dial a
//! non-loopback controller in plaintext unless explicitly allowed.
//!
//! A TLS failure that no retry can fix (an unknown CA, a refused or missing
//! certificate) is recognised in the error chain, so the agent exits with the
//! reason instead of retrying until it gives up.

use stampede_common::security::Secret;
use std::error::Error as StdError;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// TLS material of an agent.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM of the CA the controller's certificate must chain to.
    pub ca: Vec<u8>,
    /// The agent's certificate chain (PEM), presented to the controller.
    pub cert: Option<Vec<u8>>,
    /// The agent's private key (PEM).
    pub key: Option<Secret>,
}

/// How an agent authenticates itself and the controller.
#[derive(Debug, Clone, Default)]
pub struct ClientSecurity {
    /// TLS; required for an `https://` controller.
    pub tls: Option<ClientTls>,
    /// Join token sent as `authorization: Bearer …`.
    pub join_token: Option<Secret>,
    /// Dial a non-loopback controller over plaintext `http://`.
    pub allow_plaintext: bool,
}

/// A controller URL or security setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Whether `host` (from a URL) names this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The endpoint for `url` with `sec` applied, or why it may not be dialed.
pub fn endpoint(url: &str, sec: &ClientSecurity) -> Result<Endpoint, ConfigError> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| ConfigError(format!("invalid controller URL {url:?}: {e}")))?;
    let uri = endpoint.uri().clone();
    let host = uri.host().unwrap_or_default();
    match (uri.scheme_str(), &sec.tls) {
        (Some("http"), None) => {
            if !is_loopback_host(host) {
                if !sec.allow_plaintext {
                    return Err(ConfigError(format!(
                        "refusing to dial {url} in plaintext: {host} is not a loopback address. Use https:// with --ca, --cert and --key (see `controller certs`), or pass --allow-plaintext to send unencrypted"
                    )));
                }
                if sec.join_token.is_some() {
                    tracing::warn!(
                        "the join token is sent in plaintext to {host} (--allow-plaintext): anyone on the path can read it"
                    );
                }
            }
            Ok(endpoint)
        }
        (Some("http"), Some(_)) => Err(ConfigError(format!(
            "--ca/--cert/--key are given but the controller URL {url} is http://; use https://"
        ))),
        (Some("https"), None) => Err(ConfigError(format!(
            "the controller URL {url} is https:// but no --ca is given to verify it"
        ))),
        (Some("https"), Some(tls)) => {
            let mut cfg = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca));
            match (&tls.cert, &tls.key) {
                (Some(cert), Some(key)) => {
                    cfg = cfg.identity(Identity::from_pem(cert, key.expose()));
                }
                (None, None) => {}
                _ => {
                    return Err(ConfigError(
                        "--cert and --key must be given together".to_string(),
                    ));
                }
            }
            endpoint
                .tls_config(cfg)
                .map_err(|e| ConfigError(format!("cannot use the TLS files: {}", chain(&e))))
        }
        _ => Err(ConfigError(format!(
            "invalid controller URL {url:?}: the scheme must be http:// or https://"
        ))),
    }
}

/// The `authorization` header value carrying `token`, marked sensitive so
/// HTTP/2 header compression never indexes it.
pub fn bearer(token: &Secret) -> Result<MetadataValue<Ascii>, ConfigError> {
    let mut text = b"Bearer ".to_vec();
    text.extend_from_slice(token.expose());
    let mut value = MetadataValue::try_from(text.as_slice())
        .map_err(|_| ConfigError("the join token is not a valid header value".to_string()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Adds the join token to every call.
#[derive(Clone, Default)]
pub struct Credentials(Option<MetadataValue<Ascii>>);

impl Credentials {
    /// Credentials for `sec`.
    pub fn new(sec: &ClientSecurity) -> Result<Self, ConfigError> {
        Ok(Self(sec.join_token.as_ref().map(bearer).transpose()?))
    }
}

impl tonic::service::Interceptor for Credentials {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

fn chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Whether a rustls error means the peers do not trust each other (no retry
/// helps), as opposed to a connection that merely dropped.
fn untrusted(e: &rustls::Error) -> bool {
    use rustls::AlertDescription as A;
    match e {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::NoApplicationProtocol
        | rustls::Error::PeerIncompatible(_) => true,
        rustls::Error::AlertReceived(a) => matches!(
            a,
            A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied
                | A::CertificateRequired
                | A::HandshakeFailure
                | A::DecryptError
                | A::ProtocolVersion
                | A::NoApplicationProtocol
        ),
        _ => false,
    }
}

/// If `e` (or anything in its source chain) is a TLS trust failure, its description.
pub fn tls_refusal(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r) = err.downcast_ref::<rustls::Error>().filter(|r| untrusted(r)) {
            return Some(r.to_string());
        }
        if let Some(r) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .filter(|r| untrusted(r))
        {
            return Some(r.to_string());
        }
        cur = err.source();
    }
    // h2 and hyper pass a TLS alert on as an I/O error rebuilt from its
    // text, which no longer downcasts to `rustls::Error`.
    let text = chain(e);
    TRUST_FAILURES
        .iter()
        .find_map(|needle| text.find(needle))
        .map(|at| {
            text[at..]
                .split([',', ')', '"', '\n'])
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
}

/// How rustls words trust failures (`rustls::Error`'s `Display`), for errors
/// that reach the agent only as text.
const TRUST_FAILURES: [&str; 15] = [
    "invalid peer certificate",
    "peer sent no certificates",
    "received fatal alert: BadCertificate",
    "received fatal alert: UnsupportedCertificate",
    "received fatal alert: CertificateRevoked",
    "received fatal alert: CertificateExpired",
    "received fatal alert: CertificateUnknown",
    "received fatal alert: UnknownCA",
    "received fatal alert: AccessDenied",
    "received fatal alert: CertificateRequired",
    "received fatal alert: HandshakeFailure",
    "received fatal alert: DecryptError",
    "received fatal alert: ProtocolVersion",
    "received fatal alert: NoApplicationProtocol",
    "peer is incompatible",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["127.0.0.1", "localhost", "LOCALHOST", "[::1]", "127.1.2.3"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["10.0.0.1", "controller", "0.0.0.0", "[::]", "example.com"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn plaintext_only_to_loopback_unless_allowed() {
        let mut sec = ClientSecurity::default();
        assert!(endpoint("http://127.0.0.1:7600", &sec).is_ok());
        let e = endpoint("http://10.1.2.3:7600", &sec).unwrap_err().0;
        assert!(e.contains("refusing") && e.contains("10.1.2.3"), "{e}");
        sec.allow_plaintext = true;
        assert!(endpoint("http://10.1.2.3:7600", &sec).is_ok());
        let e = endpoint("https://10.1.2.3:7600", &sec).unwrap_err().0;
        assert!(e.contains("--ca"), "{e}");
        assert!(endpoint("ftp://x:1", &sec).is_err());
    }

    #[test]
    fn trust_failures_are_found_inside_io_errors() {
        let rustls_err = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_err);
        assert!(tls_refusal(&io).is_some_and(|s| s.contains("UnknownCA")));
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(tls_refusal(&reset).is_none());
        // As h2 hands it on: the alert as text only.
        let text = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "received fatal alert: DecryptError".to_string(),
        );
        assert_eq!(
            tls_refusal(&text).as_deref(),
            Some("received fatal alert: DecryptError")
        );
    }

    #[test]
    fn the_bearer_header_is_sensitive() {
        let v = bearer(&Secret::new(b"0123456789abcdef".to_vec())).unwrap();
        assert!(v.is_sensitive());
        assert_eq!(v.to_str().unwrap(), "Bearer 0123456789abcdef");
    }
}
