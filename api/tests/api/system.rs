//! Health, readiness, metrics, CORS and compression.

use reqwest::Method;

use crate::support::{backends, ok_json, problem, spawn_app};

const EXTENSION: &str = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";

#[tokio::test]
async fn health_readiness_and_metrics_answer_without_credentials() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        assert_eq!(
            ok_json(
                app.request(Method::GET, "/healthz")
                    .send()
                    .await
                    .expect("sent"),
                200
            )
            .await["status"],
            "ok"
        );
        assert_eq!(
            ok_json(
                app.request(Method::GET, "/readyz")
                    .send()
                    .await
                    .expect("sent"),
                200
            )
            .await["status"],
            "ready"
        );
        ok_json(app.get(&t, "/v1/people").await, 200).await;
        let metrics = app
            .request(Method::GET, "/metrics")
            .send()
            .await
            .expect("sent");
        assert!(
            metrics.headers()["content-type"]
                .to_str()
                .unwrap_or_default()
                .starts_with("text/plain")
        );
        let text = metrics.text().await.unwrap_or_default();
        assert!(
            text.contains(r#"tenantry_http_requests_total{method="GET",operation="list_people",status="200"} 1"#),
            "{text}"
        );
        assert!(text.contains("tenantry_http_request_duration_seconds_bucket"));
    }
}

#[tokio::test]
async fn a_chrome_extension_origin_passes_cors_and_an_unknown_origin_does_not() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let preflight = app
            .request(Method::OPTIONS, "/v1/people")
            .header("origin", EXTENSION)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
            .await
            .expect("sent");
        assert_eq!(preflight.status().as_u16(), 200);
        assert_eq!(
            preflight.headers()["access-control-allow-origin"],
            EXTENSION
        );

        let resp = app
            .authed(Method::GET, "/v1/people", &t.token)
            .header("origin", EXTENSION)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.headers()["access-control-allow-origin"], EXTENSION);
        let exposed = resp.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap_or_default()
            .to_lowercase();
        assert!(
            exposed.contains("etag")
                && exposed.contains("link")
                && exposed.contains("x-request-id"),
            "{exposed}"
        );

        // Error bodies are readable by the extension too.
        let resp = app
            .request(Method::GET, "/v1/people")
            .header("origin", EXTENSION)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.headers()["access-control-allow-origin"], EXTENSION);
        problem(resp, 401, "unauthenticated").await;

        let evil = app
            .authed(Method::GET, "/v1/people", &t.token)
            .header("origin", "https://evil.example")
            .send()
            .await;
        problem(evil.expect("sent"), 403, "origin-not-allowed").await;
    }
}

#[tokio::test]
async fn responses_are_compressed_when_the_client_accepts_it() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        for encoding in ["gzip", "br"] {
            let resp = app
                .authed(Method::GET, "/v1/people", &t.token)
                .header("accept-encoding", encoding)
                .send()
                .await
                .expect("sent");
            assert_eq!(resp.headers()["content-encoding"], encoding);
        }
        let plain = app
            .authed(Method::GET, "/v1/people", &t.token)
            .send()
            .await
            .expect("sent");
        assert!(plain.headers().get("content-encoding").is_none());
    }
}
