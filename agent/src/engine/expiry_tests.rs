//! A request whose deadline (intended time + request timeout) has passed
//! when it reaches its write is expired, never sent: checked against a
//! loopback simulator that counts the requests it received, on a pooled
//! connection, a fresh one and through reqwest.

use super::*;
use stampede_sim::{RunningSim, SimConfig};

/// A simulator on loopback and the template of requests to it (1 s timeout).
async fn sim() -> (RunningSim, proto::RequestTemplate, CancellationToken) {
    let stop = CancellationToken::new();
    let cfg = SimConfig {
        ttft: Duration::from_millis(1),
        itl: Duration::from_millis(1),
        output_tokens: 2,
        ..SimConfig::default()
    };
    let sim = stampede_sim::start(cfg, "127.0.0.1:0".parse().unwrap(), stop.clone())
        .await
        .unwrap();
    let request = proto::RequestTemplate {
        base_url: format!("http://{}", sim.addr),
        model: "stampede-sim".into(),
        prompt: "hi there".into(),
        max_tokens: 2,
        stream: true,
        timeout_ms: 1000,
        ..Default::default()
    };
    (sim, request, stop)
}

/// A one-agent phase sending `request` through `http`.
fn ctx(request: &proto::RequestTemplate, http: crate::http::Client) -> Ctx {
    let start = Instant::now();
    let spec = Spec {
        phase_index: 0,
        start,
        end: start + Duration::from_secs(60),
        drain: Duration::from_secs(1),
        window: Duration::from_secs(60),
        max_requests: 0,
        max_arrivals: 0,
        shard: (Arc::new(ShardMap::equal(1).unwrap()), 0),
        join_from: Duration::ZERO,
        shape: Shape::Concurrency(proto::Concurrency { users: 1 }),
        schedule: None,
        replay: None,
        timeout: Duration::from_millis(request.timeout_ms),
        max_in_flight: 1,
        records: None,
        max_concurrency: 0,
    };
    Ctx::new(request, &spec, http, None, None).unwrap()
}

/// (sent, ok, failed, expired) over every window recorded so far.
fn counts(ctx: &Ctx) -> (u64, u64, u64, u64) {
    ctx.rec.take_all().iter().fold((0, 0, 0, 0), |acc, (_, w)| {
        let c = w.counters();
        (
            acc.0 + c.sent,
            acc.1 + c.ok,
            acc.2 + c.failed,
            acc.3 + c.expired,
        )
    })
}

/// Requests the simulator received, once a request written just now would
/// have reached its handler.
async fn received(sim: &RunningSim) -> u64 {
    tokio::time::sleep(Duration::from_millis(100)).await;
    sim.stats.requests_started()
}

/// An arrival intended at `t` and free to go then (no concurrency cap).
fn at(t: Instant) -> (Instant, Instant) {
    (t, t)
}

/// An intended time whose deadline passed a request timeout ago.
fn stalled(ctx: &Ctx) -> Instant {
    Instant::now().checked_sub(2 * ctx.timeout).unwrap()
}

#[tokio::test]
async fn a_request_past_its_deadline_at_its_write_is_expired_not_sent() {
    let (sim, request, stop) = sim().await;
    let lean = crate::session::http_client();
    assert!(lean.h1().is_some());
    for (via, http) in [("lean", lean.clone()), ("reqwest", lean.reqwest_only())] {
        // A fresh connection: nothing pooled yet.
        let ctx = ctx(&request, http);
        let before = sim.stats.requests_started();
        ctx.one_request(at(stalled(&ctx)), 0).await;
        assert_eq!(received(&sim).await, before, "{via}: received");
        assert_eq!(
            counts(&ctx),
            (0, 0, 0, 1),
            "{via}: (sent, ok, failed, expired)"
        );

        // A kept-alive connection: one request answered, then one stalled.
        ctx.one_request(at(Instant::now()), 1).await;
        ctx.one_request(at(stalled(&ctx)), 2).await;
        assert_eq!(received(&sim).await, before + 1, "{via}: received");
        assert_eq!(
            counts(&ctx),
            (1, 1, 0, 1),
            "{via}: (sent, ok, failed, expired)"
        );
    }
    stop.cancel();
}

#[tokio::test]
async fn a_request_failing_before_its_write_still_counts_as_sent() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let request = proto::RequestTemplate {
        base_url: format!("http://127.0.0.1:{port}"),
        model: "m".into(),
        stream: true,
        timeout_ms: 1000,
        ..Default::default()
    };
    let lean = crate::session::http_client();
    for (via, http) in [("lean", lean.clone()), ("reqwest", lean.reqwest_only())] {
        let ctx = ctx(&request, http);
        ctx.one_request(at(Instant::now()), 0).await;
        assert_eq!(
            counts(&ctx),
            (1, 0, 1, 0),
            "{via}: (sent, ok, failed, expired)"
        );
    }
}
