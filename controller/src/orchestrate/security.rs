//! Who may join a run: the agents' gRPC endpoint over mTLS, a join token,
//! and the rule that plaintext is served on loopback only unless the plan
//! says otherwise.
//!
//! With TLS configured, every accepted connection is sniffed: a TLS
//! ClientHello goes through the rustls handshake, anything else is answered
//! by a gRPC endpoint that refuses every call with `UNAUTHENTICATED` and says
//! to use TLS. The handshake checks that the client holds the key of the
//! certificate it presents; whether that certificate chains to the plan's CA
//! is checked by a gate in front of every call, together with the join token
//! (`authorization: Bearer …`, compared in constant time). Checking the chain
//! at the gate rather than failing the handshake turns a stranger's
//! certificate into a precise gRPC status instead of a TLS alert that races
//! the connection's close, so an agent reliably prints why and exits instead
//! of retrying.

use crate::orchestrate::intake::{self, Vetted};
use crate::orchestrate::service::Coordinator;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use stampede_common::MAX_MESSAGE_BYTES;
use stampede_common::proto::coordinator_service_server::CoordinatorServiceServer;
use stampede_common::security::Secret;
use stampede_plan::security::{Security, TlsFiles};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Status};

/// The first byte of a TLS record carrying a handshake message.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Why the agents' endpoint cannot be served as configured.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// Plaintext requested on an address other hosts can reach.
    #[error(
        "refusing to serve agents in plaintext on {addr}, which is not a loopback address: configure `agents.tls` (see `controller certs`), or set `agents.allow_plaintext = true` to accept unencrypted, unauthenticated agents"
    )]
    PlaintextListen {
        /// The listen address.
        addr: SocketAddr,
    },
    /// A certificate or key cannot be used.
    #[error("cannot use {path} for TLS: {reason}")]
    Tls {
        /// The offending file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Refuse plaintext on a non-loopback `addr` unless the plan allows it.
pub fn check_listen(addr: SocketAddr, sec: &Security) -> Result<(), SecurityError> {
    if sec.tls.is_none() && !sec.allow_plaintext && !addr.ip().is_loopback() {
        return Err(SecurityError::PlaintextListen { addr });
    }
    Ok(())
}

/// The agents' endpoint's TLS: the rustls configuration and the verifier of
/// client certificate chains that [`Gate`] applies.
#[derive(Clone)]
pub struct ServerTls {
    /// rustls server configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// Verifies a client's chain against the plan's CA.
    pub clients: Arc<dyn ClientCertVerifier>,
}

/// Accepts any client certificate chain at the handshake but still checks
/// the handshake signatures (the client holds the certificate's key); the
/// chain itself is judged by [`Gate`] with the strict verifier.
#[derive(Debug)]
struct ChainCheckedLater(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for ChainCheckedLater {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The TLS setup for `files`: the controller's identity, client certificates
/// required and verified against the CA by [`Gate`], ALPN `h2`, the ring
/// provider.
pub fn server_tls(files: &TlsFiles) -> Result<ServerTls, SecurityError> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let tls_err = |path: &PathBuf, reason: String| SecurityError::Tls {
        path: path.clone(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&files.ca.pem) {
        let cert = cert.map_err(|e| tls_err(&files.ca.path, format!("bad PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| tls_err(&files.ca.path, format!("not a usable CA certificate: {e}")))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&files.cert.pem)
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(&files.cert.path, format!("bad PEM: {e}")))?;
    // The error of a key parse never includes the key bytes.
    let key = PrivateKeyDer::from_pem_slice(files.key.expose())
        .map_err(|e| tls_err(&files.key_path, format!("bad PEM private key: {e}")))?;
    let clients: Arc<dyn ClientCertVerifier> =
        rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| tls_err(&files.ca.path, e.to_string()))?;
    let verifier = Arc::new(ChainCheckedLater(clients.clone()));
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&files.cert.path, e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            tls_err(
                &files.cert.path,
                format!(
                    "certificate and key {} do not fit: {e}",
                    files.key_path.display()
                ),
            )
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ServerTls {
        config: Arc::new(cfg),
        clients,
    })
}

/// Checks every call: a client certificate (when TLS is on) and the join
/// token (when configured).
#[derive(Clone)]
pub struct Gate {
    clients: Option<Arc<dyn ClientCertVerifier>>,
    token: Option<Secret>,
}

impl Gate {
    /// A gate for `sec`; `tls` when the endpoint serves TLS.
    pub fn new(sec: &Security, tls: Option<&ServerTls>) -> Self {
        Self {
            clients: tls.map(|t| t.clients.clone()),
            token: sec.join_token.clone(),
        }
    }

    fn refuse(req: &Request<()>, why: &str) -> Status {
        let peer = req
            .remote_addr()
            .map_or_else(|| "unknown address".to_string(), |a| a.to_string());
        tracing::warn!("refused an agent connection from {peer}: {why}");
        Status::unauthenticated(why.to_string())
    }
}

impl tonic::service::Interceptor for Gate {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(clients) = &self.clients {
            let certs = req.peer_certs().unwrap_or_default();
            let Some((leaf, intermediates)) = certs.split_first() else {
                return Err(Self::refuse(
                    &req,
                    "no client certificate: this controller requires one signed by its CA (agent --cert/--key)",
                ));
            };
            if let Err(e) = clients.verify_client_cert(leaf, intermediates, UnixTime::now()) {
                return Err(Self::refuse(
                    &req,
                    &format!(
                        "client certificate not accepted: it is not signed by this controller's CA ({e})"
                    ),
                ));
            }
        }
        if let Some(token) = &self.token {
            let given = req
                .metadata()
                .get("authorization")
                .map(|v| v.as_bytes())
                .and_then(|v| v.strip_prefix(b"Bearer "));
            match given {
                None => {
                    return Err(Self::refuse(
                        &req,
                        "no join token: this controller requires one (agent --join-token-file or STAMPEDE_JOIN_TOKEN)",
                    ));
                }
                Some(t) if !token.matches(t) => {
                    return Err(Self::refuse(&req, "wrong join token"));
                }
                Some(_) => {}
            }
        }
        Ok(req)
    }
}

/// Answers calls that arrived in plaintext on a TLS endpoint.
fn refuse_plaintext(req: Request<()>) -> Result<Request<()>, Status> {
    Err(Gate::refuse(
        &req,
        "this controller requires TLS: dial https:// with --ca, --cert and --key",
    ))
}

fn coordinator_server(c: Coordinator) -> CoordinatorServiceServer<Coordinator> {
    CoordinatorServiceServer::new(c)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// Serve `coordinator` on `listener` as `sec` says, until `shutdown`.
/// Every connection is vetted first ([`intake`]).
pub fn spawn_server(
    listener: TcpListener,
    coordinator: Coordinator,
    sec: &Security,
    tls: Option<ServerTls>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let gated = Routes::new(InterceptedService::new(
        coordinator_server(coordinator.clone()),
        Gate::new(sec, tls.as_ref()),
    ));
    let Some(tls) = tls else {
        let (tx, rx) = mpsc::channel(64);
        return tokio::spawn(async move {
            let accept = intake::accept(listener, shutdown.clone(), move |stream, peer| {
                intake::hand_over(stream, peer, tx.clone())
            });
            let (served, ()) = tokio::join!(intake::serve(gated, rx, shutdown.clone()), accept);
            if let Err(e) = served {
                tracing::error!("agent endpoint stopped: {e}");
            }
        });
    };
    let (tls_tx, tls_rx) = mpsc::channel(64);
    let (plain_tx, plain_rx) = mpsc::channel(64);
    let refusing = Routes::new(InterceptedService::new(
        coordinator_server(coordinator),
        refuse_plaintext,
    ));
    tokio::spawn(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
        let accept = intake::accept(listener, shutdown.clone(), move |stream, peer| {
            sort_connection(
                stream,
                peer,
                acceptor.clone(),
                tls_tx.clone(),
                plain_tx.clone(),
            )
        });
        let (a, b, ()) = tokio::join!(
            intake::serve(gated, tls_rx, shutdown.clone()),
            intake::serve(refusing, plain_rx, shutdown.clone()),
            accept
        );
        if let Err(e) = a.and(b) {
            tracing::error!("agent endpoint stopped: {e}");
        }
    })
}

/// Hand a new connection to the TLS endpoint (after its handshake) or, when
/// it does not start with a TLS handshake, to the refusing endpoint.
async fn sort_connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    tls_tx: mpsc::Sender<Vetted<tokio_rustls::server::TlsStream<TcpStream>>>,
    plain_tx: mpsc::Sender<Vetted<TcpStream>>,
) {
    let mut first = [0u8; 1];
    if !matches!(stream.peek(&mut first).await, Ok(1)) {
        return;
    }
    if first[0] != TLS_HANDSHAKE_RECORD {
        return intake::hand_over(stream, peer, plain_tx).await;
    }
    match acceptor.accept(stream).await {
        Ok(tls) => intake::hand_over(tls, peer, tls_tx).await,
        Err(e) => {
            tracing::warn!("refused an agent connection from {peer}: TLS handshake failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    #[test]
    fn plaintext_only_on_loopback_unless_allowed() {
        let mut sec = Security::default();
        assert!(check_listen("127.0.0.1:7600".parse().unwrap(), &sec).is_ok());
        assert!(check_listen("[::1]:7600".parse().unwrap(), &sec).is_ok());
        let e = check_listen("0.0.0.0:7600".parse().unwrap(), &sec).unwrap_err();
        assert!(e.to_string().contains("0.0.0.0:7600"), "{e}");
        sec.allow_plaintext = true;
        assert!(check_listen("0.0.0.0:7600".parse().unwrap(), &sec).is_ok());
    }

    #[test]
    fn the_gate_checks_the_token() {
        let sec = Security {
            join_token: Some(Secret::new(b"0123456789abcdef".to_vec())),
            ..Security::default()
        };
        let mut gate = Gate::new(&sec, None);
        let with = |v: Option<&'static str>| {
            let mut r = Request::new(());
            if let Some(v) = v {
                r.metadata_mut().insert("authorization", v.parse().unwrap());
            }
            r
        };
        assert!(gate.call(with(Some("Bearer 0123456789abcdef"))).is_ok());
        let wrong = gate
            .call(with(Some("Bearer 0123456789abcdeX")))
            .unwrap_err();
        assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
        assert!(wrong.message().contains("wrong join token"));
        assert!(!wrong.message().contains("0123"));
        let none = gate.call(with(None)).unwrap_err();
        assert!(none.message().contains("no join token"));
        assert!(gate.call(with(Some("0123456789abcdef"))).is_err());
    }

    #[test]
    fn the_gate_requires_a_certificate_with_tls() {
        let dir = tempfile::tempdir().unwrap();
        let g = crate::orchestrate::certs::generate(&["localhost".into()]).unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            stampede_plan::security::PemFile {
                path,
                pem: text.as_bytes().to_vec(),
            }
        };
        let files = TlsFiles {
            ca: file("ca.pem", &g.ca_pem),
            cert: file("c.pem", &g.controller_pem),
            key_path: dir.path().join("c.key"),
            key: Secret::new(g.controller_key.into_bytes()),
        };
        let tls = server_tls(&files).unwrap();
        let mut gate = Gate::new(&Security::default(), Some(&tls));
        let e = gate.call(Request::new(())).unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        assert!(e.message().contains("client certificate"));
    }
}
