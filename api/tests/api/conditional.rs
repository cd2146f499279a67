//! Conditional requests (ETag / If-None-Match → 304, If-Match → 412) and idempotent
//! creates (Idempotency-Key).

use reqwest::Method;
use serde_json::json;

use crate::support::{backends, ok_json, problem, s, spawn_app};

#[tokio::test]
async fn a_get_with_the_current_etag_is_304_and_a_stale_one_is_200() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let person = app.create_person(&t, "Ada", None).await;
        let path = format!("/v1/people/{}", s(&person, "id"));

        let resp = app
            .authed(Method::GET, &path, &t.token)
            .header("if-none-match", "\"1\"")
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 304);
        assert_eq!(resp.headers()["etag"], "\"1\"");
        assert!(resp.text().await.unwrap_or_default().is_empty());

        let resp = app
            .authed(Method::GET, &path, &t.token)
            .header("if-none-match", "W/\"1\"")
            .send()
            .await
            .expect("sent");
        assert_eq!(
            resp.status().as_u16(),
            304,
            "weak comparison for If-None-Match"
        );

        app.patch(&t, &path, &json!({"title": "CTO"})).await;
        let resp = app
            .authed(Method::GET, &path, &t.token)
            .header("if-none-match", "\"1\"")
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.headers()["etag"], "\"2\"");
        assert_eq!(ok_json(resp, 200).await["title"], "CTO");
    }
}

#[tokio::test]
async fn an_update_or_delete_with_a_stale_if_match_is_412_and_changes_nothing() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let account = app.create_account(&t, "Globex").await;
        let path = format!("/v1/accounts/{}", s(&account, "id"));
        app.patch(&t, &path, &json!({"name": "Globex 2"})).await;

        let stale = app
            .authed(Method::PATCH, &path, &t.token)
            .header("if-match", "\"1\"")
            .json(&json!({"name": "Lost update"}))
            .send()
            .await
            .expect("sent");
        problem(stale, 412, "precondition-failed").await;
        let delete = app
            .authed(Method::DELETE, &path, &t.token)
            .header("if-match", "\"1\"")
            .send()
            .await
            .expect("sent");
        problem(delete, 412, "precondition-failed").await;
        assert_eq!(
            s(&ok_json(app.get(&t, &path).await, 200).await, "name"),
            "Globex 2"
        );

        let fresh = app
            .authed(Method::PATCH, &path, &t.token)
            .header("if-match", "\"2\"")
            .json(&json!({"name": "Globex 3"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(fresh.headers()["etag"], "\"3\"");
        ok_json(fresh, 200).await;

        let garbage = app
            .authed(Method::DELETE, &path, &t.token)
            .header("if-match", "three")
            .send()
            .await
            .expect("sent");
        problem(garbage, 400, "invalid-parameter").await;
        let delete = app
            .authed(Method::DELETE, &path, &t.token)
            .header("if-match", "\"3\"")
            .send()
            .await
            .expect("sent");
        assert_eq!(delete.status().as_u16(), 204);
    }
}

#[tokio::test]
async fn a_retried_create_with_the_same_idempotency_key_returns_the_first_response() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let send = |body: serde_json::Value, key: &'static str| {
            app.authed(Method::POST, "/v1/accounts", &t.token)
                .header("idempotency-key", key)
                .json(&body)
                .send()
        };
        let first = send(json!({"name": "Globex", "domain": "globex.com"}), "key-1")
            .await
            .expect("sent");
        assert!(first.headers().get("idempotent-replayed").is_none());
        let first = ok_json(first, 201).await;

        // Same body (keys in another order): the stored response, not a second account.
        let again = send(json!({"domain": "globex.com", "name": "Globex"}), "key-1")
            .await
            .expect("sent");
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(ok_json(again, 201).await, first);
        let list = ok_json(app.get(&t, "/v1/accounts").await, 200).await;
        assert_eq!(list["data"].as_array().map(Vec::len), Some(1));

        let other_body = send(json!({"name": "Initech"}), "key-1")
            .await
            .expect("sent");
        problem(other_body, 422, "idempotency-key-reused").await;

        // A failed request does not burn the key: fixed and retried, it runs.
        let invalid = send(json!({"name": ""}), "key-2").await.expect("sent");
        problem(invalid, 422, "validation-failed").await;
        let fixed = send(json!({"name": "Fixed"}), "key-2").await.expect("sent");
        assert_eq!(s(&ok_json(fixed, 201).await, "name"), "Fixed");
    }
}

#[tokio::test]
async fn concurrent_creates_with_one_idempotency_key_make_one_account_and_replay_it() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let send = || {
            app.authed(Method::POST, "/v1/accounts", &t.token)
                .header("idempotency-key", "together")
                .json(&json!({"name": "Globex"}))
                .send()
        };
        // The second waits for the first's transaction, then replays its response: no
        // 409, whichever order the server sees them in.
        let (one, two) = tokio::join!(send(), send());
        let (one, two) = (one.expect("sent"), two.expect("sent"));
        let replayed = |r: &reqwest::Response| r.headers().get("idempotent-replayed").is_some();
        assert!(replayed(&one) != replayed(&two), "exactly one is a replay");
        assert_eq!(ok_json(one, 201).await, ok_json(two, 201).await);
        let list = ok_json(app.get(&t, "/v1/accounts").await, 200).await;
        assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
    }
}

#[tokio::test]
async fn idempotency_keys_are_scoped_to_the_credential() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let other_token = app.token(&t, &[api::auth::Scope::AccountsWrite]);
        let first = app
            .authed(Method::POST, "/v1/accounts", &t.token)
            .header("idempotency-key", "shared")
            .json(&json!({"name": "One"}))
            .send()
            .await
            .expect("sent");
        ok_json(first, 201).await;
        // Same user, other token: same credential (`jwt:user:<sub>`), so a replay.
        let replay = app
            .authed(Method::POST, "/v1/accounts", &other_token)
            .header("idempotency-key", "shared")
            .json(&json!({"name": "One"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(replay.headers()["idempotent-replayed"], "true");

        let key = ok_json(
            app.post(
                &t,
                "/v1/api_keys",
                &json!({"name": "k", "scopes": ["accounts:write"]}),
            )
            .await,
            201,
        )
        .await;
        let by_key = app
            .authed(Method::POST, "/v1/accounts", s(&key, "secret"))
            .header("idempotency-key", "shared")
            .json(&json!({"name": "Two"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(
            s(&ok_json(by_key, 201).await, "name"),
            "Two",
            "an API key has its own key space"
        );
    }
}
