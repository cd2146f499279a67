//! `/v1/accounts`: happy paths and bad inputs.

use reqwest::Method;
use serde_json::json;

use crate::support::{backends, error_fields, ok_json, problem, s, spawn_app};

#[tokio::test]
async fn an_account_can_be_created_read_listed_updated_and_deleted() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;

        let resp = app
            .post(&t, "/v1/accounts", &json!({"name": "  Globex ", "domain": "Globex.COM", "custom_fields": {"tier": "gold"}}))
            .await;
        let location = resp.headers()["location"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        assert_eq!(resp.headers()["etag"], "\"1\"");
        let created = ok_json(resp, 201).await;
        assert_eq!(
            (s(&created, "name"), s(&created, "domain")),
            ("Globex", "globex.com"),
            "normalized by the domain"
        );
        assert_eq!(created["custom_fields"], json!({"tier": "gold"}));
        assert_eq!(
            created["deleted_at"],
            serde_json::Value::Null,
            "null fields are present"
        );
        let id = s(&created, "id").to_owned();
        assert_eq!(location, format!("/v1/accounts/{id}"));

        let fetched = ok_json(app.get(&t, &location).await, 200).await;
        assert_eq!(fetched, created);

        let list = ok_json(app.get(&t, "/v1/accounts").await, 200).await;
        assert_eq!(list["data"].as_array().map(Vec::len), Some(1));
        assert_eq!(list["has_more"], false);
        assert_eq!(list["next_cursor"], serde_json::Value::Null);

        let updated = ok_json(
            app.patch(&t, &location, &json!({"name": "Globex Corp", "domain": null, "custom_fields": {"tier": null, "seats": 5}}))
                .await,
            200,
        )
        .await;
        assert_eq!(s(&updated, "name"), "Globex Corp");
        assert_eq!(updated["domain"], serde_json::Value::Null, "null clears");
        assert_eq!(
            updated["custom_fields"],
            json!({"seats": 5}),
            "custom_fields merge-patch"
        );
        assert_eq!(updated["version"], 2);

        let resp = app.delete(&t, &location).await;
        assert_eq!(resp.status().as_u16(), 204);
        problem(app.get(&t, &location).await, 404, "not-found").await;
        let list = ok_json(app.get(&t, "/v1/accounts").await, 200).await;
        assert_eq!(
            list["data"].as_array().map(Vec::len),
            Some(0),
            "deleted accounts leave default lists"
        );
        problem(app.delete(&t, &location).await, 404, "not-found").await;
    }
}

#[tokio::test]
async fn invalid_accounts_are_rejected_with_every_failing_field() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let body = json!({"name": "", "domain": "not a domain", "custom_fields": {"": 1}});
        let p = problem(
            app.post(&t, "/v1/accounts", &body).await,
            422,
            "validation-failed",
        )
        .await;
        let mut fields = error_fields(&p);
        fields.sort();
        assert_eq!(fields, ["custom_fields", "domain", "name"]);

        let p = problem(
            app.post(&t, "/v1/accounts", &json!({"domain": "acme.com"}))
                .await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(error_fields(&p), ["name"]);
        assert_eq!(p["errors"][0]["code"], "required");

        let p = problem(
            app.post(&t, "/v1/accounts", &json!({"name": "A", "nmae": "typo"}))
                .await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(
            (error_fields(&p), s(&p["errors"][0], "code")),
            (vec!["nmae".to_owned()], "unknown_field")
        );

        let p = problem(
            app.post(
                &t,
                "/v1/accounts",
                &json!({"name": "A", "owner_id": "not-a-uuid"}),
            )
            .await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(error_fields(&p), ["owner_id"]);

        let p = problem(
            app.post(
                &t,
                "/v1/accounts",
                &json!({"name": "A", "owner_id": uuid::Uuid::now_v7()}),
            )
            .await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(
            (error_fields(&p), s(&p["errors"][0], "code")),
            (vec!["owner_id".to_owned()], "not_found")
        );

        let account = app.create_account(&t, "Globex").await;
        let path = format!("/v1/accounts/{}", s(&account, "id"));
        let p = problem(
            app.patch(&t, &path, &json!({"name": null})).await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(
            (error_fields(&p), s(&p["errors"][0], "code")),
            (vec!["name".to_owned()], "not_nullable")
        );

        problem(
            app.get(&t, "/v1/accounts?domain=nodots").await,
            422,
            "validation-failed",
        )
        .await;

        let resp = app
            .authed(Method::POST, "/v1/accounts", &t.token)
            .header("content-type", "text/plain")
            .body("name=Globex")
            .send()
            .await
            .expect("sent");
        problem(resp, 415, "unsupported-media-type").await;
    }
}

#[tokio::test]
async fn accounts_can_be_filtered_by_domain_and_name_prefix() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        for (name, domain) in [
            ("Globex", "globex.com"),
            ("Global Corp", "global.com"),
            ("Initech", "initech.com"),
        ] {
            ok_json(
                app.post(&t, "/v1/accounts", &json!({"name": name, "domain": domain}))
                    .await,
                201,
            )
            .await;
        }
        let names = |v: serde_json::Value| -> Vec<String> {
            v["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| s(a, "name").to_owned())
                .collect()
        };
        let by_prefix = ok_json(app.get(&t, "/v1/accounts?name_prefix=glo").await, 200).await;
        assert_eq!(names(by_prefix), ["Globex", "Global Corp"]);
        let by_domain = ok_json(app.get(&t, "/v1/accounts?domain=INITECH.com").await, 200).await;
        assert_eq!(names(by_domain), ["Initech"]);
    }
}
