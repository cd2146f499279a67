//! Rate limits through the real server: costs and headers on every `/v1` response, 429s
//! naming the violated policy, per-IP limits without a credential, the published costs,
//! and — with `REDIS_URL` — instances sharing one budget through Redis. (The algorithm's
//! own tests, with an injected clock, are in `api/ratelimit/tests/ratelimit.rs`.)
//!
//! Redis tests follow the crate's rule: without `REDIS_URL` they return early with a note,
//! except under `CI=true`, where that fails. Each uses its own key prefix. The outage test
//! starts (and stops, and restarts) a `redis-server` of its own on a spare port instead;
//! the same rule holds for that binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use api::Settings;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::own_redis::Redis;
use crate::support::{
    Instance, TestApp, TestTenant, backends, header, ok_json, problem, s, spawn_app_with,
};

const QUOTA_EXCEEDED: &str = "https://iana.org/assignments/http-problem-types#quota-exceeded";

async fn app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(&backends().remove(0), configure).await
}

/// Small budgets: tenant 100, credential 40 (just above the dearest request, 35), IP 3.
fn small(settings: &mut Settings) {
    let limits = &mut settings.rate_limit;
    limits.tenant_quota = 100;
    limits.credential_quota = 40;
    limits.anonymous_quota = 3;
}

fn cost(resp: &Response) -> u64 {
    header(resp, "x-ratelimit-cost").parse().unwrap_or(u64::MAX)
}

/// Asserts `resp` is a 429 quota-exceeded problem naming `policy`, with `Retry-After`.
async fn quota_exceeded(resp: Response, policy: &str) -> Value {
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(header(&resp, "content-type"), "application/problem+json");
    let retry: u64 = header(&resp, "retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(cost(&resp), 0, "a refused request costs nothing");
    assert!(header(&resp, "ratelimit").contains(&format!("\"{policy}\";r=")));
    let request_id = header(&resp, "x-request-id");
    let body: Value = resp.json().await.expect("problem body");
    assert_eq!(body["type"], QUOTA_EXCEEDED, "{body}");
    assert_eq!(body["status"], 429, "{body}");
    assert_eq!(body["title"], "Quota exceeded", "{body}");
    assert_eq!(body["violated-policies"], json!([policy]), "{body}");
    assert_eq!(body["request_id"], request_id.as_str(), "{body}");
    assert!(
        s(&body, "detail").contains(&format!("retry in {retry} s")),
        "{body}"
    );
    body
}

async fn create_account(app: &TestApp, token: &str) -> Response {
    app.authed(Method::POST, "/v1/accounts", token)
        .json(&json!({ "name": "Globex" }))
        .send()
        .await
        .expect("sent")
}

/// An API key of `tenant` with every scope (costs the creator a write).
async fn api_key(app: &TestApp, tenant: &TestTenant) -> String {
    let body = json!({ "name": "integration", "scopes": api::auth::Scope::all_names() });
    let created = ok_json(app.post(tenant, "/v1/api_keys", &body).await, 201).await;
    s(&created, "secret").to_owned()
}

#[tokio::test]
async fn every_v1_response_carries_the_policies_what_is_left_and_its_cost() {
    let app = app_with(|s| {
        s.rate_limit.tenant_quota = 600;
        s.rate_limit.credential_quota = 300;
    })
    .await;
    let t = app.tenant("acme").await;

    let created = create_account(&app, &t.token).await;
    assert_eq!(created.status().as_u16(), 201);
    assert_eq!(cost(&created), 5, "a write costs 5");
    assert_eq!(
        header(&created, "ratelimit-policy"),
        r#""tenant";q=600;w=60, "credential";q=300;w=60"#
    );
    // 5 units are 0.5 s of the tenant's refill and 1 s of the credential's.
    assert_eq!(
        header(&created, "ratelimit"),
        r#""tenant";r=595;t=1, "credential";r=295;t=1"#
    );
    let etag = header(&created, "etag");
    let account = ok_json(created, 201).await;
    let path = format!("/v1/accounts/{}", s(&account, "id"));

    let read = app.get(&t, &path).await;
    assert_eq!(
        (read.status().as_u16(), cost(&read)),
        (200, 1),
        "a read costs 1"
    );
    let not_modified = app
        .authed(Method::GET, &path, &t.token)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(
        (not_modified.status().as_u16(), cost(&not_modified)),
        (304, 0),
        "a 304 is free"
    );
    assert!(!header(&not_modified, "ratelimit").is_empty());

    let costs = [
        ("/v1/accounts", 2),
        ("/v1/accounts?limit=49", 1),
        ("/v1/accounts?limit=200", 5),
        // Offset pages: page 26 of 100 skips 2 500 rows, page 101 the last 10 000 there
        // are offset pages for; page 501 is refused, so it costs what a failure costs.
        ("/v1/accounts?limit=100&page=2", 3),
        ("/v1/accounts?limit=100&page=26", 5),
        ("/v1/accounts?limit=100&page=101", 11),
        ("/v1/accounts?limit=100&page=501", 1),
        ("/v1/activities/feed?limit=100", 3),
        // An empty sync page is free: polling for changes stays cheap.
        (
            "/v1/accounts?sort=updated_at&updated_after=2999-01-01T00:00:00Z",
            0,
        ),
        // A request that fails before its operation runs costs 1.
        ("/v1/nothing-here", 1),
        ("/v1/accounts?limit=0", 1),
    ];
    for (path, expected) in costs {
        let resp = app.get(&t, path).await;
        assert_eq!(cost(&resp), expected, "{path}: {}", resp.status());
        assert!(
            header(&resp, "ratelimit").starts_with(r#""tenant";r="#),
            "{path}"
        );
    }
    // A non-empty sync page is charged like any page.
    let sync = app.get(&t, "/v1/accounts?sort=updated_at").await;
    assert_eq!(cost(&sync), 2);

    // Outside /v1 nothing is limited.
    let health = app
        .request(Method::GET, "/healthz")
        .send()
        .await
        .expect("sent");
    assert!(header(&health, "ratelimit").is_empty());
}

#[tokio::test]
async fn a_credential_over_budget_gets_429_with_retry_after_while_its_tenant_goes_on() {
    let app = app_with(small).await;
    let t = app.tenant("acme").await;
    // The user's token spends 5 on the key and 35 on seven accounts: its 40.
    let key = api_key(&app, &t).await;
    for _ in 0..7 {
        assert_eq!(create_account(&app, &t.token).await.status().as_u16(), 201);
    }
    quota_exceeded(create_account(&app, &t.token).await, "credential").await;
    // Refused again: the refusal charged nothing, and nothing refilled a whole write.
    quota_exceeded(create_account(&app, &t.token).await, "credential").await;

    // The tenant still has 60: its integration's key goes on.
    let resp = app
        .authed(Method::GET, "/v1/accounts", &key)
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let ratelimit = header(&resp, "ratelimit");
    assert!(ratelimit.contains(r#""credential";r=38;"#), "{ratelimit}");

    let metrics = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        metrics.contains(r#"tenantry_rate_limited_total{policy="credential"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_tenant_budget_binds_all_its_credentials_together() {
    let app = app_with(small).await;
    let t = app.tenant("acme").await;
    let key = api_key(&app, &t).await;
    // The user token: 5 (the key) + 35; the key: 40. 80 of the tenant's 100 spent.
    for _ in 0..7 {
        assert_eq!(create_account(&app, &t.token).await.status().as_u16(), 201);
    }
    for _ in 0..8 {
        assert_eq!(create_account(&app, &key).await.status().as_u16(), 201);
    }
    // A third credential of the tenant (a service token) has 40 of its own, but only 20
    // of the tenant's remain: four writes, then the tenant refuses.
    let other = app
        .issuer()
        .issue(
            tenancy::TenantId::from_uuid(t.id),
            api::auth::jwt::TokenType::Service,
            "billing-sync",
            &api::auth::Scope::all_names(),
            chrono::TimeDelta::hours(1),
        )
        .expect("token");
    for _ in 0..4 {
        assert_eq!(create_account(&app, &other).await.status().as_u16(), 201);
    }
    let body = quota_exceeded(create_account(&app, &other).await, "tenant").await;
    assert!(s(&body, "detail").contains("`tenant`"), "{body}");
}

#[tokio::test]
async fn requests_without_a_valid_credential_are_limited_per_client_ip() {
    let app = app_with(small).await;
    let t = app.tenant("acme").await;
    for token in [None, Some("not-a-valid-token"), None] {
        let mut req = app.request(Method::GET, "/v1/accounts");
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("sent");
        assert_eq!(header(&resp, "ratelimit-policy"), r#""ip";q=3;w=60"#);
        assert_eq!(cost(&resp), 1);
        problem(resp, 401, "unauthenticated").await;
    }
    let resp = app
        .request(Method::GET, "/v1/accounts")
        .bearer_auth("still-not-a-token")
        .send()
        .await
        .expect("sent");
    quota_exceeded(resp, "ip").await;
    // A valid credential is held to its own budgets, not the IP's.
    assert_eq!(app.get(&t, "/v1/accounts").await.status().as_u16(), 200);
}

#[tokio::test]
async fn with_limits_disabled_nothing_is_refused_and_no_header_is_sent() {
    let app = app_with(|s| s.rate_limit.enabled = false).await;
    let t = app.tenant("acme").await;
    let resp = app.get(&t, "/v1/accounts").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(header(&resp, "ratelimit").is_empty());
    assert!(header(&resp, "x-ratelimit-cost").is_empty());
}

#[tokio::test]
async fn the_spec_publishes_every_operation_s_cost_and_the_rate_limit_headers() {
    let app = app_with(|_| {}).await;
    let spec = ok_json(
        app.request(Method::GET, "/openapi.json")
            .send()
            .await
            .expect("sent"),
        200,
    )
    .await;
    let mut ops = 0;
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let id = s(op, "operationId");
            let cost = op["x-rate-limit-cost"].as_u64();
            assert!(
                cost.is_some_and(|c| c >= 1),
                "{method} {path}: {id} has no cost"
            );
            let declared = api::v1::operation(id).expect("declared next to its handler");
            assert_eq!(cost, Some(declared.units(None, None)), "{id}");
            // The scope the front door checks is the one the spec declares.
            assert_eq!(
                op["security"][1]["bearer"][0].as_str(),
                Some(declared.scope.as_str()),
                "{id}"
            );
            if id.starts_with("list_") && id != "list_api_keys" {
                assert!(s(op, "x-rate-limit-cost-rule").contains("limit/50"), "{id}");
            }
            let too_many = &op["responses"]["429"];
            assert_eq!(
                too_many["headers"]["Retry-After"]["$ref"], "#/components/headers/Retry-After",
                "{id}"
            );
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                assert_eq!(
                    response["headers"]["RateLimit"]["$ref"], "#/components/headers/RateLimit",
                    "{id} {status}"
                );
            }
            ops += 1;
        }
    }
    assert_eq!(
        ops,
        api::v1::OPERATIONS.len(),
        "every priced operation is in the spec"
    );
    let description = s(&spec["info"], "description");
    assert!(
        description.contains("| `list_people` | 2 |"),
        "the docs list the costs"
    );
    assert!(spec["components"]["headers"]["RateLimit-Policy"].is_object());
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_to_in_process_limits_and_the_api_keeps_serving() {
    let app = app_with(|s| {
        // Nothing listens on port 1: every Redis call fails at once.
        s.redis_url = Some("redis://127.0.0.1:1".into());
        small(s);
    })
    .await;
    let t = app.tenant("acme").await;
    let resp = app.get(&t, "/v1/accounts").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(cost(&resp), 2);
    // The fallback still limits (per instance).
    for _ in 0..7 {
        assert_eq!(create_account(&app, &t.token).await.status().as_u16(), 201);
    }
    quota_exceeded(create_account(&app, &t.token).await, "credential").await;
    let metrics = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        metrics.contains("tenantry_rate_limit_redis_up 0"),
        "{metrics}"
    );
    let fallbacks = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tenantry_rate_limit_fallbacks_total "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(fallbacks.is_some_and(|n| n >= 9), "{metrics}");
}

/// `REDIS_URL`, or `None` (with a note) outside CI; under `CI=true` its absence fails.
fn redis_url(test: &str) -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: CI=true but REDIS_URL is unset")
        }
        _ => {
            eprintln!("{test}: REDIS_URL is unset; skipping");
            None
        }
    }
}

fn with_redis(url: &str, settings: &mut Settings) {
    settings.redis_url = Some(url.into());
    settings.rate_limit.key_prefix = format!("test:{}:", uuid::Uuid::now_v7().simple());
    // A slow CI machine must not turn these into fallback tests.
    settings.rate_limit.redis_timeout = Duration::from_secs(2);
}

#[tokio::test]
async fn instances_sharing_redis_share_one_budget() {
    let Some(url) = redis_url("instances_share") else {
        return;
    };
    let app = app_with(|s| {
        small(s);
        with_redis(&url, s);
    })
    .await;
    let second = app.another_instance().await;
    let t = app.tenant("acme").await;
    for _ in 0..8 {
        assert_eq!(create_account(&app, &t.token).await.status().as_u16(), 201);
    }
    // What the first instance charged, the second refuses.
    let resp = app
        .client
        .get(format!("{}/v1/accounts", second.base))
        .bearer_auth(&t.token)
        .send()
        .await
        .expect("sent");
    quota_exceeded(resp, "credential").await;
    assert_eq!(app.state.limiter.as_ref().map(|l| l.fallbacks()), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_on_four_instances_sharing_redis_get_the_quota_within_two_percent() {
    let Some(url) = redis_url("four_instances") else {
        return;
    };
    // Small enough for a slow, busy machine (a debug build among parallel tests) to spend
    // it well within the run; the run checks that it did.
    let quota = 100;
    let window = Duration::from_secs(60);
    let app = app_with(|s| {
        s.rate_limit.tenant_quota = quota;
        s.rate_limit.credential_quota = quota;
        s.rate_limit.window = window;
        with_redis(&url, s);
    })
    .await;
    let mut bases = vec![app.base.clone()];
    let mut others = Vec::new();
    for _ in 0..3 {
        let instance = app.another_instance().await;
        bases.push(instance.base.clone());
        others.push(instance);
    }
    let t = app.tenant("acme").await;
    let account = app.create_account(&t, "Globex").await;
    let path = format!("/v1/accounts/{}", s(&account, "id"));
    // The create cost 5 of the quota; reads (cost 1) spend the rest.
    let admitted = Arc::new(AtomicU64::new(5));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_millis(1500);
    let mut tasks = Vec::new();
    for client in 0..64 {
        let url = format!("{}{path}", bases[client % 4]);
        let token = t.token.clone();
        let http = app.client.clone();
        let (admitted, refused) = (admitted.clone(), refused.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let resp = http
                    .get(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .expect("sent");
                match resp.status().as_u16() {
                    200 => {
                        admitted.fetch_add(cost(&resp), Ordering::Relaxed);
                    }
                    429 => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("unexpected {other}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("client");
    }
    let elapsed = started.elapsed();
    let admitted = admitted.load(Ordering::Relaxed);
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the clients never spent the budget (admitted {admitted}): nothing was compared"
    );
    // GCRA: the whole quota at once, plus what refilled while the clients ran.
    let expected = quota as f64 * (1.0 + elapsed.as_secs_f64() / window.as_secs_f64());
    let error = (admitted as f64 - expected).abs() / quota as f64;
    eprintln!("admitted {admitted} cost units in {elapsed:?}; expected {expected:.1}");
    assert!(
        error <= 0.02,
        "admitted {admitted}, expected {expected:.1} ± 2% of {quota}"
    );
    for state in std::iter::once(&app.state).chain(others.iter().map(|o| &o.state)) {
        assert_eq!(state.limiter.as_ref().map(|l| l.fallbacks()), Some(0));
    }
}

/// An anonymous `GET /v1/accounts` claiming to come from `forwarded_for`, with `token`.
async fn forwarded(app: &TestApp, forwarded_for: &str, token: Option<&str>) -> Response {
    let mut req = app
        .request(Method::GET, "/v1/accounts")
        .header("x-forwarded-for", forwarded_for);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("sent")
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_address_budget() {
    let app = app_with(|s| {
        small(s);
        // The tests' client is the proxy.
        s.rate_limit.trusted_proxies = vec!["127.0.0.0/8".parse().expect("block")];
    })
    .await;
    for _ in 0..3 {
        let resp = forwarded(&app, "198.51.100.1, 203.0.113.1", None).await;
        problem(resp, 401, "unauthenticated").await;
    }
    let resp = forwarded(&app, "198.51.100.1, 203.0.113.1", None).await;
    quota_exceeded(resp, "ip").await;
    // Another client behind the same proxy has its own budget; what a client writes to the
    // left of the address the proxy saw is ignored.
    let resp = forwarded(&app, "203.0.113.1, 203.0.113.2", None).await;
    assert_eq!(cost(&resp), 1);
    problem(resp, 401, "unauthenticated").await;
    // Without the header the proxy itself is the client: a budget of its own, too.
    let resp = app
        .request(Method::GET, "/v1/accounts")
        .send()
        .await
        .expect("sent");
    problem(resp, 401, "unauthenticated").await;
}

#[tokio::test]
async fn a_forwarded_for_header_from_an_untrusted_peer_is_ignored() {
    // The default: no trusted proxies.
    let app = app_with(small).await;
    for client in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let resp = forwarded(&app, client, None).await;
        problem(resp, 401, "unauthenticated").await;
    }
    // A fourth spoofed address does not buy a fresh budget: the peer's is spent.
    quota_exceeded(forwarded(&app, "203.0.113.4", None).await, "ip").await;
}

#[tokio::test]
async fn a_flood_of_invalid_api_keys_is_refused_at_the_address_quota_before_any_lookup() {
    let app = app_with(|s| {
        small(s);
        s.rate_limit.anonymous_quota = 4;
        s.rate_limit.trusted_proxies = vec!["127.0.0.1/32".parse().expect("block")];
    })
    .await;
    let t = app.tenant("acme").await;
    let key = api_key(&app, &t).await;
    let pepper = *app.state.auth.pepper();
    // Well-formed keys with valid checksums: only a database lookup can refuse them.
    let bad = || api::auth::api_key::generate(&pepper, t.id).token;

    let attacker = "203.0.113.66";
    for _ in 0..4 {
        let resp = forwarded(&app, attacker, Some(&bad())).await;
        assert_eq!(header(&resp, "ratelimit-policy"), r#""ip";q=4;w=60"#);
        assert_eq!(cost(&resp), 1, "a failed verification costs the address 1");
        let body = problem(resp, 401, "unauthenticated").await;
        assert!(s(&body, "detail").contains("unknown or revoked"), "{body}");
    }
    // The address's quota (from the settings) is spent: refused before the lookup.
    for _ in 0..3 {
        quota_exceeded(forwarded(&app, attacker, Some(&bad())).await, "ip").await;
    }
    // So refused even with a valid key this instance has not verified yet: without the
    // lookup the two cannot be told apart — which shows no lookup happened.
    quota_exceeded(forwarded(&app, attacker, Some(&key)).await, "ip").await;

    // From another address the valid key verifies; its address gets the unit back...
    let client = "198.51.100.7";
    let resp = forwarded(&app, client, Some(&key)).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(header(&resp, "ratelimit-policy").starts_with(r#""tenant";"#));
    for _ in 0..4 {
        let resp = forwarded(&app, client, Some(&bad())).await;
        problem(resp, 401, "unauthenticated").await;
    }
    quota_exceeded(forwarded(&app, client, Some(&bad())).await, "ip").await;
    // ...and, verified (cached) now, it passes from the spent address too: no lookup needed.
    let resp = forwarded(&app, attacker, Some(&key)).await;
    assert_eq!(resp.status().as_u16(), 200);
}

/// `POST /v1/accounts` on the instance at `base`.
async fn create_account_at(app: &TestApp, base: &str, token: &str) -> Response {
    app.client
        .post(format!("{base}/v1/accounts"))
        .bearer_auth(token)
        .json(&json!({ "name": "Globex" }))
        .send()
        .await
        .expect("sent")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_redis_goes_away_the_api_limits_in_process_and_shares_budgets_again_once_back() {
    let Some(redis) = Redis::start(0).await else {
        return;
    };
    let port = redis.port;
    let url = redis.url();
    let app = app_with(|s| {
        small(s);
        with_redis(&url, s);
    })
    .await;
    let second: Instance = app.another_instance().await;
    let t = app.tenant("acme").await;
    let account = app.create_account(&t, "Initech").await;
    let etag = format!("\"{}\"", account["version"]);
    let path = format!("/v1/accounts/{}", s(&account, "id"));
    let limiters = [&app.state, &second.state].map(|state| state.limiter.clone().expect("on"));

    // Redis up: the two instances share the credential's 40 (the create above took 5).
    for _ in 0..7 {
        assert_eq!(create_account(&app, &t.token).await.status().as_u16(), 201);
    }
    let resp = create_account_at(&app, &second.base, &t.token).await;
    quota_exceeded(resp, "credential").await;
    assert_eq!(limiters.each_ref().map(|l| l.fallbacks()), [0, 0]);

    // Redis goes away: the API keeps serving, each instance limiting on its own.
    redis.kill();
    let resp = app.get(&t, &path).await;
    assert_eq!(
        resp.status().as_u16(),
        200,
        "a read is served without Redis"
    );
    for _ in 0..7 {
        assert_eq!(create_account(&app, &t.token).await.status().as_u16(), 201);
    }
    quota_exceeded(create_account(&app, &t.token).await, "credential").await;
    // The second instance's fallback has its own budget for the same credential.
    let resp = create_account_at(&app, &second.base, &t.token).await;
    assert_eq!(resp.status().as_u16(), 201);
    let metrics = app
        .request(Method::GET, "/metrics")
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        metrics.contains("tenantry_rate_limit_redis_up 0"),
        "{metrics}"
    );
    assert!(limiters.iter().all(|l| l.fallbacks() > 0));

    // Redis returns on the same port, empty (no persistence), as after a restart. A
    // service token polls with free requests (304s) until both instances use it again.
    let _redis = Redis::start(port).await.expect("redis-server restarts");
    let poller = app
        .issuer()
        .issue(
            tenancy::TenantId::from_uuid(t.id),
            api::auth::jwt::TokenType::Service,
            "poller",
            &api::auth::Scope::all_names(),
            chrono::TimeDelta::hours(1),
        )
        .expect("token");
    let back = Instant::now();
    let deadline = back + Duration::from_secs(30);
    for (base, limiter) in [&app.base, &second.base].into_iter().zip(&limiters) {
        while !limiter.stats().redis_healthy {
            assert!(Instant::now() < deadline, "{base} never went back to Redis");
            let resp = app
                .client
                .get(format!("{base}{path}"))
                .bearer_auth(&poller)
                .header("if-none-match", &etag)
                .send()
                .await
                .expect("sent");
            assert!(
                [304, 429].contains(&resp.status().as_u16()),
                "{}",
                resp.status()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "{base}: back on Redis {} ms after it returned",
            back.elapsed().as_millis()
        );
    }

    // Shared again: the credential's budget (fresh in the restarted Redis) spent through
    // one instance binds the other — decided by Redis, not by a fallback.
    let fallbacks = limiters.each_ref().map(|l| l.fallbacks());
    for _ in 0..8 {
        assert_eq!(create_account(&app, &t.token).await.status().as_u16(), 201);
    }
    let resp = create_account_at(&app, &second.base, &t.token).await;
    quota_exceeded(resp, "credential").await;
    assert_eq!(limiters.each_ref().map(|l| l.fallbacks()), fallbacks);
}
