//! Findings of a hostile review, one test per finding: tokens from the future, CORS
//! caching, Idempotency-Key bytes, errors outside the problem format (431, 414, 405,
//! OPTIONS), lax media types, and `/metrics` on the public port.

use api::auth::jwt::TokenType;
use chrono::{TimeDelta, Utc};
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use tenancy::TenantId;

use crate::support::{
    TestApp, TestTenant, backends, error_fields, header, ok_json, problem, s, spawn_app,
    spawn_app_with, spawn_app_with_metrics_listener,
};

const EXTENSION: &str = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";

/// A correctly signed token for `t` with its claims changed by `edit`.
fn token_with(app: &TestApp, t: &TestTenant, edit: impl FnOnce(&mut Value)) -> String {
    let claims = app.issuer().claims(
        TenantId::from_uuid(t.id),
        TokenType::User,
        &t.admin_id.to_string(),
        &["people:read".to_owned()],
        TimeDelta::hours(1),
    );
    let mut claims = serde_json::to_value(claims).expect("claims serialize");
    edit(&mut claims);
    app.issuer().issue_claims(&claims).expect("signs")
}

#[tokio::test]
async fn a_token_not_yet_valid_or_issued_in_the_future_is_401_within_a_30_second_leeway() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let now = Utc::now().timestamp();
        let year_3000 = 32_503_680_000_i64;
        for (why, edit) in [
            (
                "not valid yet",
                Box::new(move |c: &mut Value| c["nbf"] = json!(now + 3600))
                    as Box<dyn FnOnce(&mut Value)>,
            ),
            (
                "issued in the future",
                Box::new(move |c: &mut Value| c["iat"] = json!(now + 3600)),
            ),
            (
                "issued in the future",
                Box::new(move |c: &mut Value| {
                    c["iat"] = json!(year_3000);
                    c["exp"] = json!(year_3000 + 3600);
                }),
            ),
        ] {
            let token = token_with(&app, &t, edit);
            let resp = app
                .authed(Method::GET, "/v1/people", &token)
                .send()
                .await
                .expect("sent");
            let p = problem(resp, 401, "unauthenticated").await;
            assert!(s(&p, "detail").contains(why), "{why}: {p}");
        }
        // Clocks drift: a few seconds ahead is still inside the leeway.
        let slightly_ahead = token_with(&app, &t, |c| {
            c["nbf"] = json!(now + 10);
            c["iat"] = json!(now + 10);
        });
        let resp = app
            .authed(Method::GET, "/v1/people", &slightly_ahead)
            .send()
            .await
            .expect("sent");
        ok_json(resp, 200).await;
    }
}

/// Whether the `Vary` header(s) of `resp` name `Origin`.
fn varies_on_origin(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case("origin"))
}

#[tokio::test]
async fn every_response_varies_on_origin_when_cors_is_on() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let preflight = app
            .request(Method::OPTIONS, "/v1/people")
            .header("origin", EXTENSION)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .expect("sent");
        assert_eq!(preflight.status().as_u16(), 200);
        assert!(varies_on_origin(&preflight), "preflight");

        for (origin, encoding) in [(Some(EXTENSION), None), (Some(EXTENSION), Some("gzip"))] {
            let mut req = app.authed(Method::GET, "/v1/people", &t.token);
            if let Some(origin) = origin {
                req = req.header("origin", origin);
            }
            if let Some(encoding) = encoding {
                req = req.header("accept-encoding", encoding);
            }
            let resp = req.send().await.expect("sent");
            assert_eq!(resp.status().as_u16(), 200);
            assert_eq!(resp.headers()["access-control-allow-origin"], EXTENSION);
            assert!(varies_on_origin(&resp), "{encoding:?}");
        }

        // The answer without an Origin (no CORS headers) must not be served from a cache
        // to a browser that sends one, nor the other way round.
        let plain = app.get(&t, "/v1/people").await;
        assert!(varies_on_origin(&plain), "no Origin");
        ok_json(plain, 200).await;

        let error = app
            .request(Method::GET, "/v1/people")
            .header("origin", EXTENSION)
            .send()
            .await
            .expect("sent");
        assert!(varies_on_origin(&error), "error");
        problem(error, 401, "unauthenticated").await;

        let evil = app
            .authed(Method::GET, "/v1/people", &t.token)
            .header("origin", "https://evil.example")
            .send()
            .await
            .expect("sent");
        assert!(varies_on_origin(&evil), "refused origin");
        problem(evil, 403, "origin-not-allowed").await;
    }
}

#[tokio::test]
async fn an_idempotency_key_that_is_not_1_to_255_printable_ascii_characters_is_400() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let create = |key: HeaderValue| {
            app.authed(Method::POST, "/v1/accounts", &t.token)
                .header("idempotency-key", key)
                .json(&json!({"name": "Globex"}))
                .send()
        };
        let bad = [
            HeaderValue::from_bytes("clé-1".as_bytes()).expect("obs-text is a header value"),
            HeaderValue::from_bytes("ключ".as_bytes()).expect("obs-text is a header value"),
            HeaderValue::from_static("a key"),
            HeaderValue::from_static("tab\tkey"),
            HeaderValue::from_str(&"k".repeat(256)).expect("ascii"),
        ];
        for key in bad {
            // Twice: neither attempt may create anything.
            for _ in 0..2 {
                let resp = create(key.clone()).await.expect("sent");
                assert!(resp.headers().get("idempotent-replayed").is_none());
                let p = problem(resp, 400, "invalid-parameter").await;
                assert_eq!(error_fields(&p), ["Idempotency-Key"], "{key:?}: {p}");
            }
        }
        // Two keys on one request are not one key.
        let two = app
            .authed(Method::POST, "/v1/accounts", &t.token)
            .header("idempotency-key", "first")
            .header("idempotency-key", "second")
            .json(&json!({"name": "Globex"}))
            .send()
            .await
            .expect("sent");
        let p = problem(two, 400, "invalid-parameter").await;
        assert_eq!(error_fields(&p), ["Idempotency-Key"], "{p}");
        let list = ok_json(app.get(&t, "/v1/accounts").await, 200).await;
        assert_eq!(list["data"].as_array().map(Vec::len), Some(0), "{list}");

        // The edges of the rule are accepted, and replayed.
        for key in ["!", &"~".repeat(255)] {
            let key = HeaderValue::from_str(key).expect("ascii");
            let first = create(key.clone()).await.expect("sent");
            assert!(first.headers().get("idempotent-replayed").is_none());
            let first = ok_json(first, 201).await;
            let again = create(key).await.expect("sent");
            assert_eq!(header(&again, "idempotent-replayed"), "true");
            assert_eq!(ok_json(again, 201).await, first);
        }
    }
}

#[test]
fn the_spec_declares_the_idempotency_key_format() {
    let spec: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../openapi/openapi.json"
        ))
        .unwrap_or_default(),
    )
    .unwrap_or(Value::Null);
    let mut seen = 0;
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            for param in op["parameters"].as_array().into_iter().flatten() {
                if param["name"] != "Idempotency-Key" {
                    continue;
                }
                let schema = &param["schema"];
                assert_eq!(schema["minLength"], 1, "{method} {path}");
                assert_eq!(schema["maxLength"], 255, "{method} {path}");
                assert_eq!(schema["pattern"], "^[\\x21-\\x7E]+$", "{method} {path}");
                seen += 1;
            }
        }
    }
    assert!(seen >= 3, "every create declares Idempotency-Key");
}

#[tokio::test]
async fn an_oversized_header_section_is_431_and_an_overlong_uri_414_both_as_problems() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        // Far below hyper's own limits (a 64 KiB URI, a ~400 KiB head), above the app's.
        let huge_token = "a".repeat(20 * 1024);
        let resp = app
            .authed(Method::GET, "/v1/people", &huge_token)
            .send()
            .await
            .expect("sent");
        let p = problem(resp, 431, "headers-too-large").await;
        assert!(s(&p, "detail").contains("16384"), "{p}");

        let huge_cursor = "c".repeat(20 * 1024);
        let resp = app
            .get(&t, &format!("/v1/people?cursor={huge_cursor}"))
            .await;
        let p = problem(resp, 414, "uri-too-long").await;
        assert!(s(&p, "detail").contains("8192"), "{p}");

        let long_path = format!("/v1/people/{}", "x".repeat(9 * 1024));
        problem(app.get(&t, &long_path).await, 414, "uri-too-long").await;

        // Just under the limits, the request is an ordinary one.
        let resp = app
            .get(&t, &format!("/v1/people?cursor={}", "c".repeat(7 * 1024)))
            .await;
        problem(resp, 400, "invalid-cursor").await;
    }
}

#[tokio::test]
async fn a_wrong_method_is_405_with_an_allow_header() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let person = app.create_person(&t, "Ada", None).await;
        for (method, path, allow) in [
            (
                Method::PUT,
                "/v1/people".to_owned(),
                "GET, HEAD, POST, OPTIONS",
            ),
            (
                Method::POST,
                format!("/v1/people/{}", s(&person, "id")),
                "GET, HEAD, PATCH, DELETE, OPTIONS",
            ),
            (Method::DELETE, "/healthz".to_owned(), "GET, HEAD, OPTIONS"),
            (
                Method::POST,
                "/openapi.json".to_owned(),
                "GET, HEAD, OPTIONS",
            ),
        ] {
            let resp = app
                .authed(method.clone(), &path, &t.token)
                .send()
                .await
                .expect("sent");
            assert_eq!(header(&resp, "allow"), allow, "{method} {path}");
            problem(resp, 405, "method-not-allowed").await;
        }
    }
}

#[tokio::test]
async fn options_lists_the_allowed_methods_whether_or_not_cors_is_on() {
    for backend in backends() {
        for cors in [false, true] {
            let app = spawn_app_with(&backend, |s| {
                if !cors {
                    s.cors_origins.clear();
                }
            })
            .await;
            let resp = app
                .request(Method::OPTIONS, "/v1/people")
                .send()
                .await
                .expect("sent");
            assert_eq!(resp.status().as_u16(), 204, "cors {cors}");
            assert_eq!(header(&resp, "allow"), "GET, HEAD, POST, OPTIONS");
            assert!(!header(&resp, "x-request-id").is_empty());

            let unknown = app
                .request(Method::OPTIONS, "/v1/nothing-here")
                .send()
                .await
                .expect("sent");
            problem(unknown, 404, "not-found").await;
        }
    }
}

#[tokio::test]
async fn only_application_json_in_utf8_is_accepted_as_a_json_body() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let send = |content_type: &'static str| {
            app.authed(Method::POST, "/v1/accounts", &t.token)
                .header("content-type", content_type)
                .body(r#"{"name": "Globex"}"#)
                .send()
        };
        for refused in [
            "application/evil+json",
            "application/problem+json",
            "application/merge-patch+json",
            "application/json; charset=latin1",
            "application/json; charset=utf-16",
            "application/json; profile=x",
            "application/jsonx",
            "text/json",
        ] {
            let resp = send(refused).await.expect("sent");
            let p = problem(resp, 415, "unsupported-media-type").await;
            assert!(
                s(&p, "detail").contains("application/json"),
                "{refused}: {p}"
            );
        }
        for accepted in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
            "application/json; charset=\"utf-8\"",
        ] {
            ok_json(send(accepted).await.expect("sent"), 201).await;
        }
    }
}

#[tokio::test]
async fn with_a_metrics_address_metrics_are_served_there_and_not_on_the_public_port() {
    for backend in backends() {
        let (app, metrics_base) = spawn_app_with_metrics_listener(&backend).await;
        let t = app.tenant("acme").await;
        ok_json(app.get(&t, "/v1/people").await, 200).await;

        let public = app
            .request(Method::GET, "/metrics")
            .send()
            .await
            .expect("sent");
        problem(public, 404, "not-found").await;
        let public = app
            .request(Method::OPTIONS, "/metrics")
            .send()
            .await
            .expect("sent");
        problem(public, 404, "not-found").await;

        let scrape = app
            .client
            .get(format!("{metrics_base}/metrics"))
            .send()
            .await
            .expect("sent");
        assert_eq!(scrape.status().as_u16(), 200);
        assert!(header(&scrape, "content-type").starts_with("text/plain"));
        let text = scrape.text().await.unwrap_or_default();
        assert!(
            text.contains(
                r#"tenantry_http_requests_total{method="GET",operation="list_people",status="200"} 1"#
            ),
            "{text}"
        );

        // The metrics listener serves nothing else, and answers like the API does.
        let other = app
            .client
            .get(format!("{metrics_base}/v1/people"))
            .bearer_auth(&t.token)
            .send()
            .await
            .expect("sent");
        problem(other, 404, "not-found").await;
        let wrong = app
            .client
            .post(format!("{metrics_base}/metrics"))
            .send()
            .await
            .expect("sent");
        assert_eq!(header(&wrong, "allow"), "GET, HEAD, OPTIONS");
        problem(wrong, 405, "method-not-allowed").await;
    }
}
