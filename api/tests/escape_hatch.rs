//! The Citus-free net for the escape hatch: while serving `/v1`, the server uses
//! `tenancy::Unscoped` only on the tables listed in [`ALLOWED`], each for a stated reason —
//! tables Citus keeps on every node (reference tables) — never on a distributed table
//! without its tenant. (The statement guard is the other half of the net: every statement
//! through a tenant handle carries the tenant predicate.)
//!
//! Its own test binary: `tenancy::unscoped_tables()` counts escape-hatch statements per
//! process, so no other test may run beside it. Fixtures are made first (creating a tenant
//! uses the hatch, outside any request); the difference across the requests is what the
//! request path did.

#[path = "api/support.rs"]
#[expect(
    dead_code,
    reason = "the shared test support; this binary uses part of it"
)]
mod support;

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::json;

use support::{TestApp, TestTenant, ok_json, s, spawn_app};

/// Every table set the request path may touch through the escape hatch, and why.
const ALLOWED: &[(&[&str], &str)] = &[(
    &["api_key_prefixes"],
    "an API key without a tenant part (a legacy key) is routed by its prefix: one read of \
     the prefix directory, a reference table under Citus; the key itself is then read with \
     its tenant's handle",
)];

fn snapshot() -> BTreeMap<Vec<String>, u64> {
    tenancy::unscoped_tables().into_iter().collect()
}

/// Every `/v1` operation once, as `t`, with a JWT, a new API key and a legacy API key.
async fn every_operation(app: &TestApp, t: &TestTenant, keys: &[String]) {
    for token in std::iter::once(&t.token).chain(keys) {
        let account = ok_json(
            app.authed(Method::POST, "/v1/accounts", token)
                .header("idempotency-key", uuid::Uuid::now_v7().to_string())
                .json(&json!({"name": "Initech"}))
                .send()
                .await
                .expect("sent"),
            201,
        )
        .await;
        let account_path = format!("/v1/accounts/{}", s(&account, "id"));
        let person = ok_json(
            app.authed(Method::POST, "/v1/people", token)
                .json(&json!({"first_name": "Ada", "last_name": "L", "account_id": s(&account, "id")}))
                .send()
                .await
                .expect("sent"),
            201,
        )
        .await;
        let person_path = format!("/v1/people/{}", s(&person, "id"));
        let activity = ok_json(
            app.authed(Method::POST, "/v1/activities", token)
                .json(&json!({"person_id": s(&person, "id"), "kind": "call", "subject": "hi"}))
                .send()
                .await
                .expect("sent"),
            201,
        )
        .await;
        let activity_path = format!("/v1/activities/{}", s(&activity, "id"));
        for path in [
            "/v1/accounts?limit=2",
            "/v1/accounts?page=1",
            "/v1/people?include_account_name=true",
            "/v1/people?sort=updated_at",
            "/v1/activities",
            "/v1/activities/feed",
            "/v1/api_keys",
            &account_path,
            &person_path,
            &activity_path,
        ] {
            ok_json(
                app.authed(Method::GET, path, token)
                    .send()
                    .await
                    .expect("sent"),
                200,
            )
            .await;
        }
        for (path, body) in [
            (&account_path, json!({"name": "Initrode"})),
            (&person_path, json!({"title": "CTO"})),
            (&activity_path, json!({"subject": "hello"})),
        ] {
            let resp = app
                .authed(Method::PATCH, path, token)
                .json(&body)
                .send()
                .await
                .expect("sent");
            ok_json(resp, 200).await;
        }
        for path in [&activity_path, &person_path, &account_path] {
            let resp = app
                .authed(Method::DELETE, path, token)
                .send()
                .await
                .expect("sent");
            assert_eq!(resp.status(), 204, "{path}");
        }
    }
    let key = ok_json(
        app.authed(Method::POST, "/v1/api_keys", &t.token)
            .json(&json!({"name": "temp", "scopes": ["people:read"]}))
            .send()
            .await
            .expect("sent"),
        201,
    )
    .await;
    let revoke = format!("/v1/api_keys/{}", s(&key["api_key"], "id"));
    let resp = app
        .authed(Method::DELETE, &revoke, &t.token)
        .send()
        .await
        .expect("sent");
    assert!(resp.status().is_success(), "{}", resp.status());
}

#[tokio::test]
async fn serving_v1_uses_the_escape_hatch_only_on_reference_tables() {
    for backend in support::backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("hatch").await;
        // A new key (it names its tenant) and a legacy one (it does not).
        let new_key = ok_json(
            app.authed(Method::POST, "/v1/api_keys", &t.token)
                .json(&json!({"name": "new", "scopes": api::auth::Scope::all_names()}))
                .send()
                .await
                .expect("sent"),
            201,
        )
        .await;
        let new_key = s(&new_key, "secret").to_owned();
        let legacy_key = app.legacy_key(&t, &api::auth::Scope::all_names()).await;

        let before = snapshot();
        every_operation(&app, &t, &[new_key, legacy_key]).await;
        let after = snapshot();

        let mut used: Vec<(Vec<String>, u64)> = after
            .into_iter()
            .filter_map(|(tables, count)| {
                let new = count - before.get(&tables).copied().unwrap_or(0);
                (new > 0).then_some((tables, new))
            })
            .collect();
        used.sort();
        println!("{backend}: escape-hatch statements while serving /v1: {used:?}");
        for (tables, count) in &used {
            let allowed = ALLOWED.iter().find(|(allowed, _)| {
                allowed
                    .iter()
                    .copied()
                    .eq(tables.iter().map(String::as_str))
            });
            match allowed {
                Some((_, why)) => println!("  {tables:?} x{count}: allowed — {why}"),
                None => panic!(
                    "{backend}: the request path used the escape hatch on {tables:?} ({count} \
                     statements), which is not a reference table the list allows"
                ),
            }
        }
        // The legacy key was served: its routing read is the one use.
        assert!(
            used.iter()
                .any(|(tables, _)| tables == &["api_key_prefixes".to_owned()]),
            "{backend}: the legacy key did not go through the prefix directory: {used:?}"
        );
    }
}
