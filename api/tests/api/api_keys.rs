//! `/v1/api_keys` and API-key authentication.

use api::auth::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{backends, error_fields, ok_json, problem, s, spawn_app};

#[tokio::test]
async fn an_api_key_is_shown_once_authenticates_with_its_scopes_and_stops_when_revoked() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let created = ok_json(
            app.post(
                &t,
                "/v1/api_keys",
                &json!({"name": "CRM sync", "scopes": ["people:read"]}),
            )
            .await,
            201,
        )
        .await;
        let secret = s(&created, "secret").to_owned();
        let key = &created["api_key"];
        assert!(
            secret.starts_with(s(key, "prefix")),
            "the prefix is the start of the secret"
        );
        assert_eq!(key["scopes"], json!(["people:read"]));
        assert_eq!(s(key, "created_by"), t.admin_id.to_string());

        let listed = ok_json(app.get(&t, "/v1/api_keys").await, 200).await;
        assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
        assert!(
            !listed.to_string().contains(&secret[12..]),
            "the secret is never listed"
        );

        let people = app
            .authed(Method::GET, "/v1/people", &secret)
            .send()
            .await
            .expect("sent");
        ok_json(people, 200).await;
        let accounts = app
            .authed(Method::GET, "/v1/accounts", &secret)
            .send()
            .await
            .expect("sent");
        let p = problem(accounts, 403, "insufficient-scope").await;
        assert!(s(&p, "detail").contains("accounts:read"));

        let revoked = ok_json(
            app.delete(&t, &format!("/v1/api_keys/{}", s(key, "id")))
                .await,
            200,
        )
        .await;
        assert!(revoked["revoked_at"].is_string());
        let after = app
            .authed(Method::GET, "/v1/people", &secret)
            .send()
            .await
            .expect("sent");
        problem(after, 401, "unauthenticated").await;
    }
}

#[tokio::test]
async fn an_api_key_cannot_grant_scopes_its_creator_lacks_or_that_do_not_exist() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let limited = app.token(&t, &[Scope::ApiKeysWrite, Scope::PeopleRead]);
        let body = json!({"name": "escalate", "scopes": ["people:read", "accounts:write", "root"]});
        let resp = app
            .authed(Method::POST, "/v1/api_keys", &limited)
            .json(&body)
            .send()
            .await
            .expect("sent");
        let p = problem(resp, 422, "validation-failed").await;
        assert_eq!(error_fields(&p), ["scopes[1]", "scopes[2]"]);
        let codes: Vec<&str> = p["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| s(e, "code"))
            .collect();
        assert_eq!(codes, ["not_held", "unknown_scope"]);
    }
}

#[tokio::test]
async fn a_mistyped_api_key_is_refused_before_any_lookup() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let created = ok_json(
            app.post(
                &t,
                "/v1/api_keys",
                &json!({"name": "k", "scopes": ["people:read"]}),
            )
            .await,
            201,
        )
        .await;
        let secret = s(&created, "secret").to_owned();
        let mut typo = secret.clone().into_bytes();
        let i = typo.len() - 10;
        typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap_or_default();
        for bad in [
            typo.as_str(),
            "tnt_short",
            "tnt_AAAAAAAA_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBCCCCCC",
        ] {
            let resp = app
                .authed(Method::GET, "/v1/people", bad)
                .send()
                .await
                .expect("sent");
            let p = problem(resp, 401, "unauthenticated").await;
            assert!(s(&p, "detail").contains("malformed"), "{p}");
        }
    }
}

#[tokio::test]
async fn another_tenant_cannot_revoke_or_see_a_key() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let a = app.tenant("a").await;
        let b = app.tenant("b").await;
        let created = ok_json(
            app.post(&a, "/v1/api_keys", &json!({"name": "k", "scopes": []}))
                .await,
            201,
        )
        .await;
        let id = s(&created["api_key"], "id").to_owned();
        problem(
            app.delete(&b, &format!("/v1/api_keys/{id}")).await,
            404,
            "not-found",
        )
        .await;
        let theirs: Value = ok_json(app.get(&b, "/v1/api_keys").await, 200).await;
        assert_eq!(theirs["data"], json!([]));
    }
}

#[tokio::test]
async fn using_an_api_key_records_when_it_was_last_used() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let created = ok_json(
            app.post(
                &t,
                "/v1/api_keys",
                &json!({"name": "k", "scopes": ["people:read"]}),
            )
            .await,
            201,
        )
        .await;
        assert!(created["api_key"]["last_used_at"].is_null());
        let resp = app
            .authed(Method::GET, "/v1/people", s(&created, "secret"))
            .send()
            .await
            .expect("sent");
        ok_json(resp, 200).await;
        let listed = ok_json(app.get(&t, "/v1/api_keys").await, 200).await;
        assert!(listed["data"][0]["last_used_at"].is_string(), "{listed}");
    }
}

/// Another tenant's key, with its tenant part changed to ours (and a valid checksum):
/// the lookup runs in the tenant the key names, so it is simply not found.
#[tokio::test]
async fn a_key_whose_tenant_part_names_another_tenant_is_refused() {
    use api::auth::api_key::{KEY_PREFIX, checksum, encode_uuid};
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (a, b) = (app.tenant("a").await, app.tenant("b").await);
        let body = json!({"name": "k", "scopes": ["people:read"]});
        let b_key = ok_json(app.post(&b, "/v1/api_keys", &body).await, 201).await;
        let b_secret = s(&b_key, "secret").to_owned();
        let rest = b_secret
            .strip_prefix(KEY_PREFIX)
            .and_then(|r| r.split_once('_'))
            .map(|(_, rest)| rest.to_owned())
            .expect("tnt_<tenant>_<rest>");
        let body = format!(
            "{KEY_PREFIX}{}_{}",
            encode_uuid(a.id),
            &rest[..rest.len() - 6]
        );
        let forged = format!("{body}{}", checksum(&body));
        assert_eq!(forged.len(), b_secret.len());
        let resp = app
            .authed(Method::GET, "/v1/people", &forged)
            .send()
            .await
            .expect("sent");
        problem(resp, 401, "unauthenticated").await;
        // B's own key still works.
        let resp = app
            .authed(Method::GET, "/v1/people", &b_secret)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 200);
    }
}

/// A key issued before keys named their tenant (`tnt_<prefix>_<secret><check>`) keeps
/// authenticating, through the prefix lookup across tenants.
#[tokio::test]
async fn a_legacy_key_without_a_tenant_part_still_authenticates() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("legacy").await;
        let token = app.legacy_key(&t, &["people:read".to_owned()]).await;
        let resp = app
            .authed(Method::GET, "/v1/people", &token)
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), 200);
    }
}
