//! HTTP clients and request headers for the target.
//!
//! A client (and its connection pool) is built per distinct set of
//! connection options — HTTP/2, connect timeout, extra roots, insecure TLS —
//! and reused across phases with the same options, so a new phase does not
//! start on cold connections. The API key is read from the agent's own
//! environment by the variable name the plan gives: it never crosses the wire.
//!
//! Plain-`http://` HTTP/1.1 requests take the lean client of [`crate::h1`];
//! TLS, HTTP/2 and proxied targets go through reqwest.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use stampede_common::proto::RequestTemplate;
use std::sync::Arc;
use std::time::Duration;

/// The agent's HTTP client: reqwest, plus the lean HTTP/1.1 pool that plain
/// `http://` requests use when HTTP/2 is off and no proxy is configured.
/// Cheap to clone; clones share their connection pools.
#[derive(Debug, Clone)]
pub struct Client {
    reqwest: reqwest::Client,
    h1: Option<Arc<crate::h1::Pool>>,
}

impl Client {
    /// The reqwest client (TLS, HTTP/2, proxies).
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.reqwest
    }

    /// The lean HTTP/1.1 pool, when this client uses one.
    pub fn h1(&self) -> Option<&crate::h1::Pool> {
        self.h1.as_deref()
    }

    /// reqwest's defaults and a lean pool: the fallback when building with
    /// options fails.
    pub fn basic() -> Self {
        Self {
            reqwest: reqwest::Client::new(),
            h1: Some(Arc::new(crate::h1::Pool::new(
                &user_agent("-"),
                ClientOptions::default().connect_timeout,
            ))),
        }
    }

    /// This client without the lean pool: every request through reqwest.
    pub fn reqwest_only(&self) -> Self {
        Self {
            reqwest: self.reqwest.clone(),
            h1: None,
        }
    }
}

/// Connection options that require a distinct client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// HTTP/2 (prior knowledge for http://).
    pub http2: bool,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Extra trusted roots (PEM).
    pub ca_pem: Vec<u8>,
    /// Accept any certificate.
    pub insecure_tls: bool,
}

impl ClientOptions {
    /// The options a request template asks for.
    pub fn of(t: &RequestTemplate) -> Self {
        Self {
            http2: t.http2,
            connect_timeout: Duration::from_millis(if t.connect_timeout_ms == 0 {
                10_000
            } else {
                t.connect_timeout_ms
            }),
            ca_pem: t.ca_pem.clone(),
            insecure_tls: t.insecure_tls,
        }
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self::of(&RequestTemplate::default())
    }
}

/// The `User-Agent` of an agent's requests: servers' logs show which agent sent what.
pub fn user_agent(agent_id: &str) -> String {
    format!("stampede-agent/{} ({agent_id})", stampede_common::VERSION)
}

/// Build a client for `opts`.
pub fn build(opts: &ClientOptions) -> Result<Client, String> {
    build_for(opts, &user_agent("-"))
}

/// Build a client for `opts` sending `agent` as its User-Agent.
pub fn build_for(opts: &ClientOptions, agent: &str) -> Result<Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut defaults = HeaderMap::new();
    defaults.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut b = reqwest::Client::builder()
        .user_agent(agent)
        .default_headers(defaults)
        .tcp_nodelay(true)
        .connect_timeout(opts.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(usize::MAX);
    b = if opts.http2 {
        b.http2_prior_knowledge()
    } else {
        b.http1_only()
    };
    if !opts.ca_pem.is_empty() {
        let certs = reqwest::Certificate::from_pem_bundle(&opts.ca_pem)
            .map_err(|e| format!("CA certificates: {e}"))?;
        for cert in certs {
            b = b.add_root_certificate(cert);
        }
    }
    if opts.insecure_tls {
        b = b.danger_accept_invalid_certs(true);
    }
    let reqwest = b.build().map_err(|e| format!("HTTP client: {e}"))?;
    let h1 = (!opts.http2 && !crate::h1::proxy_configured())
        .then(|| Arc::new(crate::h1::Pool::new(agent, opts.connect_timeout)));
    Ok(Client { reqwest, h1 })
}

/// Reuses the last client while the options stay the same.
#[derive(Debug, Default)]
pub struct ClientCache {
    user_agent: String,
    last: Option<(ClientOptions, Client)>,
}

impl ClientCache {
    /// A cache whose clients identify agent `agent_id`.
    pub fn new(agent_id: &str) -> Self {
        Self {
            user_agent: user_agent(agent_id),
            last: None,
        }
    }

    /// The client for a template's options.
    pub fn get(&mut self, t: &RequestTemplate) -> Result<Client, String> {
        let opts = ClientOptions::of(t);
        if let Some((o, c)) = &self.last
            && *o == opts
        {
            return Ok(c.clone());
        }
        let client = build_for(&opts, &self.user_agent)?;
        self.last = Some((opts, client.clone()));
        Ok(client)
    }
}

/// Headers a template adds to the client's defaults (content type, user
/// agent): the plan's extra headers and `Authorization` from the named
/// environment variable. Usually empty, so most requests copy no headers.
pub fn request_headers(t: &RequestTemplate) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    for (name, value) in &t.headers {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| format!("invalid value for header {name:?}"))?;
        h.insert(n, v);
    }
    if !t.api_key_env.is_empty() {
        let key = std::env::var(&t.api_key_env).map_err(|_| {
            format!(
                "environment variable {} (target.api_key_env) is not set on this agent",
                t.api_key_env
            )
        })?;
        let mut v = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            format!(
                "environment variable {} holds characters not allowed in a header",
                t.api_key_env
            )
        })?;
        v.set_sensitive(true);
        h.insert(AUTHORIZATION, v);
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_extras_and_the_key_from_the_environment() {
        let mut t = RequestTemplate::default();
        t.headers.insert("x-team".into(), "infra".into());
        t.api_key_env = "PATH".into(); // always set; stands in for a key variable
        let h = request_headers(&t).unwrap();
        assert_eq!(h["x-team"], "infra");
        assert!(h[AUTHORIZATION].is_sensitive());
        t.api_key_env = "STAMPEDE_TEST_SURELY_UNSET_VARIABLE".into();
        let e = request_headers(&t).unwrap_err();
        assert!(e.contains("STAMPEDE_TEST_SURELY_UNSET_VARIABLE"), "{e}");
    }

    #[test]
    fn clients_are_reused_while_options_stay_the_same() {
        let mut cache = ClientCache::default();
        let t = RequestTemplate::default();
        cache.get(&t).unwrap();
        assert!(cache.last.is_some());
        let bad = RequestTemplate {
            ca_pem: b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
                .to_vec(),
            ..Default::default()
        };
        assert!(cache.get(&bad).is_err());
    }
}
