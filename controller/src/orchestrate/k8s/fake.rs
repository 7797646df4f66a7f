//! An in-memory fake of the Kubernetes API server for tests: a `kube::Client`
//! over a tower service that keeps objects as JSON, so the deploy, teardown,
//! join and discovery code runs unchanged against it with no cluster.
//!
//! It understands the REST shapes the controller uses, for any resource:
//! GET (one object, or a list filtered by `labelSelector` with `k=v`, `k!=v`
//! and `k`), metadata-only GET/LIST (`as=PartialObjectMetadata`), POST
//! (create, 409 when present), PUT (replace, 404 when absent), PATCH with a
//! server-side apply body (create or replace the fields given), DELETE,
//! LIST filtered by `fieldSelector` (`a.b=v`, e.g. events by
//! `involvedObject.name`), and pod logs (`pods/NAME/log?tailLines=N`) from
//! lines a test sets with [`FakeApi::set_log`].
//! The server sets `uid`, `creationTimestamp`, `generation` and
//! `resourceVersion`; `resourceVersion` and `generation` move only when an
//! object's content changes, as on a real server. Every request is logged as
//! "METHOD path?query" so tests can assert what was (not) asked.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

/// The fake API server; clones share one store.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// (collection path, name) → object.
    objects: BTreeMap<(String, String), Value>,
    version: u64,
    requests: Vec<String>,
    /// (pods collection, pod name) → log lines.
    logs: BTreeMap<(String, String), Vec<String>>,
}

/// A parsed resource path.
struct Target {
    /// e.g. "/apis/apps/v1/namespaces/ns/daemonsets" or "/api/v1/nodes".
    collection: String,
    name: Option<String>,
    api_version: String,
}

fn parse_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix_len, api_version) = match segs.as_slice() {
        ["api", v, ..] => (2, (*v).to_string()),
        ["apis", g, v, ..] => (3, format!("{g}/{v}")),
        _ => return None,
    };
    let rest = &segs[prefix_len..];
    let (coll_len, name) = match rest {
        ["namespaces", _, _, name] => (3, Some(*name)),
        ["namespaces", _, _] => (3, None),
        [_, name] => (1, Some(*name)),
        [_] => (1, None),
        _ => return None,
    };
    Some(Target {
        collection: format!("/{}", segs[..prefix_len + coll_len].join("/")),
        name: name.map(str::to_string),
        api_version,
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `obj` satisfies a field selector of `a.b=v` and `a.b!=v` terms.
fn fields_match(selector: &str, obj: &Value) -> bool {
    let field = |path: &str| {
        path.split('.')
            .try_fold(obj, |v, k| v.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| match term.split_once("!=") {
            Some((k, v)) => field(k).as_deref() != Some(v),
            None => {
                let (k, v) = term.split_once('=').unwrap_or((term, ""));
                field(k).as_deref() == Some(v.trim_start_matches('='))
            }
        })
}

/// Whether `labels` satisfy a selector of `k=v`, `k==v`, `k!=v` and `k` terms.
fn selector_matches(selector: &str, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                label(k.trim()) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once('=') {
                label(k.trim()) == Some(v.trim_start_matches('=').trim())
            } else if let Some(k) = term.strip_prefix('!') {
                label(k).is_none()
            } else {
                label(term).is_some()
            }
        })
}

fn kind_of(collection: &str) -> String {
    let plural = collection.rsplit('/').next().unwrap_or_default();
    match plural {
        "daemonsets" => "DaemonSet".into(),
        "configmaps" => "ConfigMap".into(),
        "serviceaccounts" => "ServiceAccount".into(),
        other => {
            let singular = other.strip_suffix('s').unwrap_or(other);
            let mut c = singular.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        }
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> (StatusCode, Value) {
    (
        code,
        json!({
            "apiVersion": "v1", "kind": "Status", "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16(),
        }),
    )
}

fn metadata_only(obj: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": obj.get("metadata").cloned().unwrap_or(Value::Null),
    })
}

impl FakeApi {
    /// An empty API server.
    pub fn new() -> Self {
        Self::default()
    }

    /// A client talking to this fake, with `namespace` as its default namespace.
    pub fn client(&self, namespace: &str) -> kube::Client {
        let api = self.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.serve(req).await) }
        });
        kube::Client::new(service, namespace)
    }

    /// Store `obj` under `collection` (e.g. "/api/v1/nodes"), as a client's
    /// create would.
    pub fn insert(&self, collection: &str, obj: Value) {
        let mut st = self.lock();
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let stored = st.stamp(obj, None);
        st.objects.insert((collection.to_string(), name), stored);
    }

    /// The stored object, if any.
    pub fn get(&self, collection: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(&(collection.to_string(), name.to_string()))
            .cloned()
    }

    /// Names stored in `collection`.
    pub fn names(&self, collection: &str) -> Vec<String> {
        self.lock()
            .objects
            .keys()
            .filter(|(c, _)| c == collection)
            .map(|(_, n)| n.clone())
            .collect()
    }

    /// Every (collection, name) stored.
    pub fn all(&self) -> Vec<(String, String)> {
        self.lock().objects.keys().cloned().collect()
    }

    /// Serve `lines` as the log of pod `name` in `pods` (a pods collection).
    pub fn set_log(&self, pods: &str, name: &str, lines: &[&str]) {
        self.lock().logs.insert(
            (pods.to_string(), name.to_string()),
            lines.iter().map(|l| (*l).to_string()).collect(),
        );
    }

    /// Requests served so far, as "METHOD path?query".
    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn serve(&self, req: Request<kube::client::Body>) -> Response<Full<Bytes>> {
        let (parts, body) = req.into_parts();
        let body = match body.collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return respond(status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string())),
        };
        let path = parts.uri.path().to_string();
        let query = parts.uri.query().unwrap_or_default().to_string();
        let accept = parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut st = self.lock();
        st.requests.push(format!("{} {path}?{query}", parts.method));
        if let Some(pod) = path.strip_suffix("/log") {
            return st.log(pod, &query);
        }
        respond(st.handle(&parts.method, &path, &query, &accept, &body))
    }
}

fn respond((code, body): (StatusCode, Value)) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

impl State {
    /// `GET .../pods/NAME/log?tailLines=N`: the pod's lines as text.
    fn log(&self, pod_path: &str, query: &str) -> Response<Full<Bytes>> {
        let Some((coll, name)) = pod_path.rsplit_once('/') else {
            return respond(status(StatusCode::NOT_FOUND, "NotFound", pod_path.into()));
        };
        let key = (coll.to_string(), name.to_string());
        if !self.objects.contains_key(&key) {
            return respond(status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("pods {name:?} not found"),
            ));
        }
        let lines = self.logs.get(&key).cloned().unwrap_or_default();
        let tail = query_param(query, "tailLines")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(lines.len());
        let text: String = lines[lines.len().saturating_sub(tail)..]
            .iter()
            .map(|l| format!("{l}\n"))
            .collect();
        let mut resp = Response::new(Full::new(Bytes::from(text)));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        resp
    }

    /// Server-set metadata: keep identity from `old`, bump the version on change.
    fn stamp(&mut self, mut obj: Value, old: Option<&Value>) -> Value {
        let old_meta = old.map(|o| &o["metadata"]);
        let unchanged = old.is_some_and(|o| {
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
                    for k in ["uid", "resourceVersion", "creationTimestamp", "generation"] {
                        m.remove(k);
                    }
                }
                v
            };
            strip(o) == strip(&obj)
        });
        if !unchanged {
            self.version += 1;
        }
        let version = self.version;
        let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
            return obj;
        };
        let keep =
            |k: &str, fresh: Value| old_meta.and_then(|m| m.get(k)).cloned().unwrap_or(fresh);
        meta.insert("uid".into(), keep("uid", json!(format!("uid-{version}"))));
        meta.insert(
            "creationTimestamp".into(),
            keep("creationTimestamp", json!("2026-01-01T00:00:00Z")),
        );
        let generation =
            old_meta.and_then(|m| m["generation"].as_i64()).unwrap_or(0) + i64::from(!unchanged);
        meta.insert("generation".into(), json!(generation));
        let rv = if unchanged {
            keep("resourceVersion", json!(version.to_string()))
        } else {
            json!(version.to_string())
        };
        meta.insert("resourceVersion".into(), rv);
        obj
    }

    /// A list of `t`'s collection, filtered by the query's label and field
    /// selectors, whole or as metadata only.
    fn list(&self, t: Target, query: &str, meta_only: bool) -> (StatusCode, Value) {
        let kind = kind_of(&t.collection);
        let selector = query_param(query, "labelSelector").unwrap_or_default();
        let fields = query_param(query, "fieldSelector").unwrap_or_default();
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|((c, _), o)| {
                *c == t.collection
                    && selector_matches(&selector, &o["metadata"]["labels"])
                    && fields_match(&fields, o)
            })
            .map(|(_, o)| {
                if meta_only {
                    metadata_only(o)
                } else {
                    o.clone()
                }
            })
            .collect();
        (
            StatusCode::OK,
            json!({
                "apiVersion": if meta_only { "meta.k8s.io/v1".to_string() } else { t.api_version },
                "kind": if meta_only { "PartialObjectMetadataList".to_string() } else { format!("{kind}List") },
                "metadata": { "resourceVersion": self.version.to_string() },
                "items": items,
            }),
        )
    }

    fn handle(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        accept: &str,
        body: &[u8],
    ) -> (StatusCode, Value) {
        let Some(t) = parse_path(path) else {
            return status(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no route {path}"),
            );
        };
        let meta_only = accept.contains("as=PartialObjectMetadata");
        let kind = kind_of(&t.collection);
        let parse_body = || serde_json::from_slice::<Value>(body);
        match (method, t.name) {
            (&Method::GET, None) => self.list(Target { name: None, ..t }, query, meta_only),
            (&Method::GET, Some(name)) => match self.objects.get(&(t.collection, name.clone())) {
                Some(o) if meta_only => (StatusCode::OK, metadata_only(o)),
                Some(o) => (StatusCode::OK, o.clone()),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    format!("{kind} {name:?} not found"),
                ),
            },
            (&Method::POST, None) => {
                let Ok(obj) = parse_body() else {
                    return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON".into());
                };
                let name = obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let key = (t.collection, name.clone());
                if self.objects.contains_key(&key) {
                    return status(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        format!("{kind} {name:?} already exists"),
                    );
                }
                let stored = self.stamp(obj, None);
                self.objects.insert(key, stored.clone());
                (StatusCode::CREATED, stored)
            }
            (&Method::PUT | &Method::PATCH, Some(name)) => {
                let Ok(obj) = parse_body() else {
                    return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON".into());
                };
                if obj["metadata"]["name"].as_str() != Some(name.as_str()) {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "the body's metadata.name differs from the path".into(),
                    );
                }
                let key = (t.collection, name.clone());
                let old = self.objects.get(&key).cloned();
                if *method == Method::PUT && old.is_none() {
                    return status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("{kind} {name:?} not found"),
                    );
                }
                let created = old.is_none();
                let stored = self.stamp(obj, old.as_ref());
                self.objects.insert(key, stored.clone());
                let code = if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                (code, stored)
            }
            (&Method::DELETE, Some(name)) => {
                match self.objects.remove(&(t.collection, name.clone())) {
                    Some(o) => (StatusCode::OK, o),
                    None => status(
                        StatusCode::NOT_FOUND,
                        "NotFound",
                        format!("{kind} {name:?} not found"),
                    ),
                }
            }
            (m, _) => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{m} {path} is not supported by the fake"),
            ),
        }
    }
}

/// A Node object for seeding: `labels`, the `Ready` condition and
/// `spec.unschedulable`.
pub fn node(name: &str, labels: &[(&str, &str)], ready: bool, unschedulable: bool) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "labels": labels },
        "spec": { "unschedulable": unschedulable },
        "status": { "conditions": [
            { "type": "MemoryPressure", "status": "False" },
            { "type": "Ready", "status": if ready { "True" } else { "False" } },
        ] },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_selectors() {
        let t = parse_path("/apis/apps/v1/namespaces/ns/daemonsets/a").unwrap();
        assert_eq!(t.collection, "/apis/apps/v1/namespaces/ns/daemonsets");
        assert_eq!(t.name.as_deref(), Some("a"));
        assert_eq!(t.api_version, "apps/v1");
        let t = parse_path("/api/v1/nodes").unwrap();
        assert_eq!((t.collection.as_str(), t.name), ("/api/v1/nodes", None));
        assert_eq!(percent_decode("a%2Fb%3Dtrue%2Cc"), "a/b=true,c".to_string());
        let labels = json!({"a/b": "true", "c": "x"});
        assert!(selector_matches("a/b=true,c", &labels));
        assert!(selector_matches("c!=y", &labels));
        assert!(!selector_matches("a/b=false", &labels));
        assert!(!selector_matches("d", &labels));
        assert!(selector_matches("!d", &labels));
    }
}
