//! The account-deletion contract over HTTP (`delete_account`'s description in the spec):
//! `DELETE /v1/accounts/{id}` unlinks the account's people in the same request — each
//! person then has `account_id: null`, a new version (its old ETag no longer matches) and
//! shows up in a sync walk resumed from before the deletion — and touches nothing of
//! another tenant. Its own binary (it shares `api/support.rs` with the `api` binary), on
//! SQLite and, with `DATABASE_URL`, PostgreSQL.

#[path = "api/support.rs"]
#[expect(
    dead_code,
    reason = "the `api` binary's helpers; this binary uses some of them"
)]
mod support;

use reqwest::Method;
use serde_json::{Value, json};

use support::{backends, header, ok_json, problem, s, spawn_app};

/// The ids of a list page, in order.
fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| s(p, "id").to_owned())
        .collect()
}

#[tokio::test]
async fn deleting_an_account_unlinks_its_people_who_then_read_with_a_null_account_and_a_new_etag() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let other = app.tenant("other").await;
        let globex = app.create_account(&t, "Globex").await;
        let globex_id = s(&globex, "id").to_owned();
        let initech = app.create_account(&t, "Initech").await;
        let ada = app.create_person(&t, "Ada", Some(&globex_id)).await;
        let grace = app.create_person(&t, "Grace", Some(&globex_id)).await;
        let alan = app.create_person(&t, "Alan", Some(s(&initech, "id"))).await;
        let foreign_account = app.create_account(&other, "Globex").await;
        let foreign = app
            .create_person(&other, "Bea", Some(s(&foreign_account, "id")))
            .await;
        let ada_path = format!("/v1/people/{}", s(&ada, "id"));
        assert_eq!(header(&app.get(&t, &ada_path).await, "etag"), "\"1\"");

        // A syncing client, up to date before the deletion.
        let synced = ok_json(
            app.get(
                &t,
                "/v1/people?sort=updated_at&updated_after=2000-01-01T00:00:00Z&limit=200",
            )
            .await,
            200,
        )
        .await;
        assert_eq!(ids(&synced).len(), 3);
        let cursor = s(&synced, "next_cursor").to_owned();

        let deleted = app.delete(&t, &format!("/v1/accounts/{globex_id}")).await;
        assert_eq!(deleted.status().as_u16(), 204);

        // The person reads with a null account, at version 2 under a new ETag.
        let resp = app.get(&t, &ada_path).await;
        assert_eq!(header(&resp, "etag"), "\"2\"");
        let now = ok_json(resp, 200).await;
        assert_eq!(now["account_id"], Value::Null);
        assert_eq!(now["version"], 2);
        assert!(s(&now, "updated_at") > s(&ada, "updated_at"));
        // A cached copy is stale: If-None-Match with the old ETag gets the new body, and
        // a PATCH based on it is refused.
        let revalidated = app
            .authed(Method::GET, &ada_path, &t.token)
            .header("If-None-Match", "\"1\"")
            .send()
            .await
            .expect("request sent");
        assert_eq!(revalidated.status().as_u16(), 200);
        let stale = app
            .authed(Method::PATCH, &ada_path, &t.token)
            .header("If-Match", "\"1\"")
            .json(&json!({ "title": "CEO" }))
            .send()
            .await
            .expect("request sent");
        problem(stale, 412, "precondition-failed").await;

        // The sync walk resumed from before the deletion returns each unlinked person.
        let resumed = ok_json(
            app.get(&t, &format!("/v1/people?sort=updated_at&cursor={cursor}"))
                .await,
            200,
        )
        .await;
        let mut changed = ids(&resumed);
        changed.sort();
        let mut expected = vec![s(&ada, "id").to_owned(), s(&grace, "id").to_owned()];
        expected.sort();
        assert_eq!(changed, expected);
        assert!(
            resumed["data"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|p| p["account_id"].is_null() && p["deleted_at"].is_null())
        );

        // The joined list names no deleted account: every account_id has its name.
        let joined = ok_json(
            app.get(&t, "/v1/people?include_account_name=true").await,
            200,
        )
        .await;
        let pairs: Vec<(String, Value, Value)> = joined["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    s(p, "first_name").to_owned(),
                    p["account_id"].clone(),
                    p["account_name"].clone(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [
                ("Ada".to_owned(), Value::Null, Value::Null),
                ("Grace".to_owned(), Value::Null, Value::Null),
                (
                    "Alan".to_owned(),
                    alan["account_id"].clone(),
                    json!("Initech")
                ),
            ]
        );

        // Another tenant's person at its own "Globex" is untouched.
        let foreign_path = format!("/v1/people/{}", s(&foreign, "id"));
        assert_eq!(
            ok_json(app.get(&other, &foreign_path).await, 200).await,
            foreign
        );
    }
}
