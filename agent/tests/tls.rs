//! HTTPS targets: a server with a certificate from a private CA is reached
//! when the plan's CA is trusted, refused when it is not, and reached with the
//! explicit insecure switch — over HTTP/1.1 and HTTP/2 (ALPN).

use axum::Router;
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use stampede_agent::client::{Target, execute};
use stampede_agent::failure::FailureClass;
use stampede_agent::http::{ClientCache, request_headers};
use stampede_common::proto::RequestTemplate;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const BODY: &str = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hello there"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;

/// An HTTPS server for `localhost`; returns its port and the CA certificate (PEM).
async fn https_server() -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ca.signing_key.serialize_der()));
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![ca.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let app = Router::new().route("/v1/chat/completions", post(|| async { BODY }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = TowerToHyperService::new(app);
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, ca.cert.pem())
}

async fn call(template: &RequestTemplate, port: u16) -> Result<u64, FailureClass> {
    let client = ClientCache::new("tls-test").get(template).expect("client");
    let target = Target {
        client,
        url: format!("https://localhost:{port}/v1/chat/completions"),
        body: r#"{"model":"m","messages":[],"stream":false}"#.into(),
        stream: false,
        headers: request_headers(template).unwrap(),
        first_token_timeout: None,
    };
    let now = Instant::now();
    execute(&target, now, now + Duration::from_secs(5), &mut Vec::new())
        .await
        .map(|s| s.output_tokens)
}

#[tokio::test]
async fn private_ca_is_trusted_only_when_given() {
    let (port, ca_pem) = https_server().await;
    for http2 in [false, true] {
        let trusted = RequestTemplate {
            ca_pem: ca_pem.clone().into_bytes(),
            http2,
            ..Default::default()
        };
        assert_eq!(call(&trusted, port).await, Ok(2), "http2 = {http2}");
    }
    let untrusted = RequestTemplate::default();
    assert_eq!(call(&untrusted, port).await, Err(FailureClass::Connect));
    let insecure = RequestTemplate {
        insecure_tls: true,
        ..Default::default()
    };
    assert_eq!(call(&insecure, port).await, Ok(2));
}
