//! Every error is RFC 9457 problem+json: poem's and poem-openapi's own errors, auth
//! failures, body limits. And request ids.

use api::auth::jwt::{Audience, TokenType};
use chrono::TimeDelta;
use reqwest::Method;
use serde_json::json;
use tenancy::TenantId;

use crate::support::{backends, error_fields, ok_json, problem, s, spawn_app};

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        problem(app.get(&t, "/v1/nothing-here").await, 404, "not-found").await;
        problem(
            app.request(Method::GET, "/").send().await.expect("sent"),
            404,
            "not-found",
        )
        .await;
        problem(
            app.authed(Method::PUT, "/v1/people", &t.token)
                .send()
                .await
                .expect("sent"),
            405,
            "method-not-allowed",
        )
        .await;
    }
}

#[tokio::test]
async fn malformed_json_empty_bodies_and_wrong_media_types_are_problems() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let send = |body: &'static str, content_type: &'static str| {
            app.authed(Method::POST, "/v1/accounts", &t.token)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        let p = problem(
            send("{\"name\": ", "application/json").await.expect("sent"),
            400,
            "malformed-json",
        )
        .await;
        assert!(s(&p, "detail").contains("line 1"), "{p}");
        problem(
            send("", "application/json").await.expect("sent"),
            400,
            "malformed-json",
        )
        .await;
        problem(
            send("{}", "text/plain").await.expect("sent"),
            415,
            "unsupported-media-type",
        )
        .await;
        let resp = app
            .authed(Method::POST, "/v1/accounts", &t.token)
            .body("{}")
            .send()
            .await
            .expect("sent");
        problem(resp, 415, "unsupported-media-type").await;
        let p = problem(
            send("[]", "application/json").await.expect("sent"),
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(error_fields(&p), ["body"]);
        ok_json(
            send("{\"name\": \"ok\"}", "application/json; charset=utf-8")
                .await
                .expect("sent"),
            201,
        )
        .await;
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_or_not_its_length_is_declared() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let limit = app.state.settings.body.max_bytes;
        let big = json!({"name": "x", "custom_fields": {"blob": "y".repeat(limit)}}).to_string();
        let declared = app
            .authed(Method::POST, "/v1/accounts", &t.token)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .expect("sent");
        problem(declared, 413, "payload-too-large").await;

        let chunks: Vec<Result<String, std::io::Error>> = big
            .as_bytes()
            .chunks(4096)
            .map(|c| Ok(String::from_utf8_lossy(c).into_owned()))
            .collect();
        let streamed = app
            .authed(Method::POST, "/v1/accounts", &t.token)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await
            .expect("sent");
        problem(streamed, 413, "payload-too-large").await;
    }
}

#[tokio::test]
async fn requests_without_valid_credentials_are_401_with_a_reason() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let resp = app
            .request(Method::GET, "/v1/people")
            .send()
            .await
            .expect("sent");
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"tenantry\""
        );
        problem(resp, 401, "unauthenticated").await;

        let tenant = TenantId::from_uuid(t.id);
        let sub = t.admin_id.to_string();
        let scopes = vec!["people:read".to_owned()];
        let mut expired =
            app.issuer()
                .claims(tenant, TokenType::User, &sub, &scopes, TimeDelta::hours(1));
        expired.exp = chrono::Utc::now().timestamp() - 3600;
        let mut wrong_audience =
            app.issuer()
                .claims(tenant, TokenType::User, &sub, &scopes, TimeDelta::hours(1));
        wrong_audience.aud = Audience::One("someone-else".to_owned());
        let mut not_a_user = app.issuer().claims(
            tenant,
            TokenType::User,
            "not-a-uuid",
            &scopes,
            TimeDelta::hours(1),
        );
        not_a_user.typ = TokenType::User;
        for (claims, why) in [
            (expired, "expired"),
            (wrong_audience, "audience"),
            (not_a_user, "UUID"),
        ] {
            let token = app.issuer().issue_claims(&claims).expect("signs");
            let p = problem(
                app.authed(Method::GET, "/v1/people", &token)
                    .send()
                    .await
                    .expect("sent"),
                401,
                "unauthenticated",
            )
            .await;
            assert!(s(&p, "detail").contains(why), "{p}");
        }
        for garbage in ["garbage", "a.b.c", ""] {
            let resp = app
                .request(Method::GET, "/v1/people")
                .header("authorization", format!("Bearer {garbage}"))
                .send()
                .await;
            problem(resp.expect("sent"), 401, "unauthenticated").await;
        }
        let basic = app
            .request(Method::GET, "/v1/people")
            .header("authorization", "Basic dXNlcjpwYXNz")
            .send()
            .await;
        problem(basic.expect("sent"), 401, "unauthenticated").await;
    }
}

#[tokio::test]
async fn a_token_for_another_service_type_acts_without_a_user() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let token = app
            .issuer()
            .issue(
                TenantId::from_uuid(t.id),
                TokenType::Service,
                "billing",
                &["accounts:write".to_owned()],
                TimeDelta::hours(1),
            )
            .expect("signs");
        let resp = app
            .authed(Method::POST, "/v1/accounts", &token)
            .json(&json!({"name": "From a service"}))
            .send()
            .await;
        ok_json(resp.expect("sent"), 201).await;
    }
}

#[tokio::test]
async fn the_request_id_is_echoed_or_generated_and_quoted_in_problems() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let resp = app
            .authed(Method::GET, "/v1/people", &t.token)
            .header("x-request-id", "trace-123")
            .send()
            .await;
        assert_eq!(resp.expect("sent").headers()["x-request-id"], "trace-123");

        let resp = app
            .request(Method::GET, "/v1/people")
            .header("x-request-id", "abc-9")
            .send()
            .await
            .expect("sent");
        let p = problem(resp, 401, "unauthenticated").await;
        assert_eq!(p["request_id"], "abc-9");

        let resp = app
            .authed(Method::GET, "/v1/people", &t.token)
            .header("x-request-id", "bad id with spaces")
            .send()
            .await;
        let generated = resp.expect("sent").headers()["x-request-id"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        assert_ne!(generated, "bad id with spaces");
        assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    }
}

#[tokio::test]
async fn bad_path_and_query_parameters_name_the_parameter() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let p = problem(
            app.get(&t, "/v1/accounts/not-a-uuid").await,
            400,
            "invalid-parameter",
        )
        .await;
        assert_eq!(error_fields(&p), ["id"]);
        let p = problem(
            app.get(&t, "/v1/accounts?limit=many").await,
            400,
            "invalid-parameter",
        )
        .await;
        assert_eq!(error_fields(&p), ["limit"]);
        let p = problem(
            app.get(&t, "/v1/people?account_id=nope").await,
            400,
            "invalid-parameter",
        )
        .await;
        assert_eq!(error_fields(&p), ["account_id"]);
    }
}

/// One rule for names a request may not use: an unknown query parameter is refused like an
/// unknown body field — 422 `validation-failed` naming it — and costs what a failed request
/// costs, on every operation.
#[tokio::test]
async fn unknown_query_parameters_are_422_naming_them_like_unknown_body_fields() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let account = app.create_account(&t, "Globex").await;
        let id = s(&account, "id");
        for path in [
            "/v1/people?select=id".to_owned(),
            "/v1/people?limit=1&select=id&include=account&select=x".to_owned(),
            format!("/v1/accounts/{id}?verbose=true"),
            "/v1/activities/feed?Limit=5".to_owned(),
        ] {
            let resp = app.get(&t, &path).await;
            assert_eq!(
                resp.headers()["x-ratelimit-cost"],
                "1",
                "{path}: a refused request costs 1"
            );
            let p = problem(resp, 422, "validation-failed").await;
            let fields = error_fields(&p);
            assert!(!fields.is_empty(), "{path}");
            for field in &fields {
                assert!(
                    !["limit", "cursor"].contains(&field.as_str()),
                    "{path}: {field}"
                );
            }
            assert!(
                p["errors"]
                    .as_array()
                    .is_some_and(|e| e.iter().all(|e| e["code"] == "unknown_parameter")),
                "{path}: {p}"
            );
        }
        let p = problem(
            app.get(&t, "/v1/people?limit=1&select=id&include=account&select=x")
                .await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(error_fields(&p), ["select", "include"]);
        // An unknown body field: the same status and type.
        let p = problem(
            app.post(&t, "/v1/accounts", &json!({"name": "n", "fields": "id"}))
                .await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(error_fields(&p), ["fields"]);
        // Declared parameters still pass, encoded or not.
        ok_json(app.get(&t, "/v1/people?limit=1&stage=lead").await, 200).await;
        ok_json(app.get(&t, "/v1/accounts?%6Cimit=2").await, 200).await;
    }
}

#[tokio::test]
async fn a_signed_token_for_a_tenant_that_does_not_exist_is_401() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let ghost = TenantId::from_uuid(uuid::Uuid::now_v7());
        let token = app
            .issuer()
            .issue(
                ghost,
                TokenType::Service,
                "svc",
                &["accounts:write".to_owned()],
                TimeDelta::hours(1),
            )
            .expect("signs");
        let resp = app
            .authed(Method::POST, "/v1/accounts", &token)
            .json(&json!({"name": "x"}))
            .send()
            .await;
        let p = problem(resp.expect("sent"), 401, "unauthenticated").await;
        assert!(s(&p, "detail").contains("tenant"), "{p}");
    }
}
