//! NUL (U+0000) in any string a request carries. PostgreSQL cannot store one (`text`
//! refuses the byte, `jsonb` the `\u0000` escape) where SQLite would, so the domain
//! refuses it before any statement, on every backend alike: a 422 naming the field and
//! nothing written — never a 500 on one backend and a stored row on the other.

use reqwest::Response;
use serde_json::{Value, json};

use crate::support::{TestApp, TestTenant, backends, error_fields, ok_json, problem, s, spawn_app};

/// A string with a NUL inside.
const NUL: &str = "a\u{0}b";

/// Asserts `resp` is a 422 `validation-failed` whose errors name `field`.
async fn refused(resp: Response, field: &str, case: &str) {
    let p = problem(resp, 422, "validation-failed").await;
    assert!(
        error_fields(&p).iter().any(|f| f == field),
        "{case}: expected an error on `{field}`: {p}"
    );
}

/// `body` with `field` set to `value`.
fn with(body: &Value, field: &str, value: Value) -> Value {
    let mut body = body.clone();
    body[field] = value;
    body
}

/// The rows a list returns (the first page is enough: tests write a handful).
async fn count(app: &TestApp, t: &TestTenant, path: &str) -> usize {
    let list = ok_json(app.get(t, path).await, 200).await;
    list["data"].as_array().map_or(0, Vec::len)
}

#[tokio::test]
async fn a_nul_anywhere_in_custom_fields_is_a_422_naming_where_it_is_and_nothing_is_stored() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;

        for (fields, field) in [
            (json!({"k": NUL}), "custom_fields.k"),
            (json!({ NUL: 1 }), "custom_fields"),
            (
                json!({"k": {"inner": ["x", NUL]}}),
                "custom_fields.k.inner[1]",
            ),
            (json!({"k": { NUL: true }}), "custom_fields.k"),
        ] {
            let body = json!({"name": "n", "custom_fields": fields});
            let case = format!("{backend}: create with {fields}");
            refused(app.post(&t, "/v1/accounts", &body).await, field, &case).await;
        }
        assert_eq!(count(&app, &t, "/v1/accounts").await, 0, "{backend}");

        let account = ok_json(
            app.post(
                &t,
                "/v1/accounts",
                &json!({"name": "n", "custom_fields": {"tier": "gold"}}),
            )
            .await,
            201,
        )
        .await;
        let path = format!("/v1/accounts/{}", s(&account, "id"));
        for (patch, field) in [
            (json!({"k": NUL}), "custom_fields.k"),
            (json!({ NUL: "v" }), "custom_fields"),
            (
                json!({"tier": ["gold", {"note": NUL}]}),
                "custom_fields.tier[1].note",
            ),
        ] {
            let case = format!("{backend}: patch with {patch}");
            let body = json!({ "custom_fields": patch });
            refused(app.patch(&t, &path, &body).await, field, &case).await;
        }
        let unchanged = ok_json(app.get(&t, &path).await, 200).await;
        assert_eq!(
            unchanged, account,
            "{backend}: a refused patch changes nothing"
        );
    }
}

#[tokio::test]
async fn a_nul_in_any_string_field_of_an_account_is_a_422_naming_the_field() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let create = json!({"name": "Globex", "domain": "globex.com"});
        for (field, value) in [("name", NUL), ("domain", "glo\u{0}bex.com")] {
            let case = format!("{backend}: create_account {field}");
            let body = with(&create, field, json!(value));
            refused(app.post(&t, "/v1/accounts", &body).await, field, &case).await;
        }
        assert_eq!(count(&app, &t, "/v1/accounts").await, 0, "{backend}");

        let account = app.create_account(&t, "Globex").await;
        let path = format!("/v1/accounts/{}", s(&account, "id"));
        for (field, value) in [("name", NUL), ("domain", "glo\u{0}bex.com")] {
            let case = format!("{backend}: update_account {field}");
            let body = json!({ field: value });
            refused(app.patch(&t, &path, &body).await, field, &case).await;
        }
        let unchanged = ok_json(app.get(&t, &path).await, 200).await;
        assert_eq!(unchanged, account, "{backend}");
    }
}

#[tokio::test]
async fn a_nul_in_any_string_field_of_a_person_is_a_422_naming_the_field() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let create = json!({
            "first_name": "Ada", "last_name": "Lovelace", "email": "ada@acme.com",
            "title": "CTO", "phone": "+15550102030", "stage": "lead",
        });
        let cases = [
            ("first_name", NUL),
            ("last_name", NUL),
            ("email", "a\u{0}da@acme.com"),
            ("title", NUL),
            ("phone", "+1555\u{0}0102030"),
            ("stage", "lead\u{0}"),
        ];
        for (field, value) in cases {
            let case = format!("{backend}: create_person {field}");
            let body = with(&create, field, json!(value));
            refused(app.post(&t, "/v1/people", &body).await, field, &case).await;
        }
        assert_eq!(count(&app, &t, "/v1/people").await, 0, "{backend}");

        let person = ok_json(app.post(&t, "/v1/people", &create).await, 201).await;
        let path = format!("/v1/people/{}", s(&person, "id"));
        for (field, value) in cases {
            let case = format!("{backend}: update_person {field}");
            let body = json!({ field: value });
            refused(app.patch(&t, &path, &body).await, field, &case).await;
        }
        let unchanged = ok_json(app.get(&t, &path).await, 200).await;
        assert_eq!(unchanged, person, "{backend}");
    }
}

#[tokio::test]
async fn a_nul_in_any_string_field_of_an_activity_is_a_422_naming_the_field() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let person = app.create_person(&t, "Ada", None).await;
        let create = json!({
            "person_id": s(&person, "id"), "kind": "call", "subject": "Intro", "body": "Notes",
        });
        let cases = [
            ("subject", NUL),
            ("body", "line one\n\u{0}line two"),
            ("kind", "call\u{0}"),
        ];
        for (field, value) in cases {
            let case = format!("{backend}: create_activity {field}");
            let body = with(&create, field, json!(value));
            refused(app.post(&t, "/v1/activities", &body).await, field, &case).await;
        }
        assert_eq!(count(&app, &t, "/v1/activities").await, 0, "{backend}");

        let activity = ok_json(app.post(&t, "/v1/activities", &create).await, 201).await;
        let path = format!("/v1/activities/{}", s(&activity, "id"));
        for (field, value) in cases {
            let case = format!("{backend}: update_activity {field}");
            let body = json!({ field: value });
            refused(app.patch(&t, &path, &body).await, field, &case).await;
        }
        let unchanged = ok_json(app.get(&t, &path).await, 200).await;
        assert_eq!(unchanged, activity, "{backend}");
    }
}

#[tokio::test]
async fn a_nul_in_an_api_key_name_or_scope_is_a_422_naming_the_field() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let keys_before = count(&app, &t, "/v1/api_keys").await;
        for (body, field) in [
            (json!({"name": NUL, "scopes": ["people:read"]}), "name"),
            (
                json!({"name": "sync", "scopes": ["people:read\u{0}"]}),
                "scopes[0]",
            ),
        ] {
            let case = format!("{backend}: create_api_key {body}");
            refused(app.post(&t, "/v1/api_keys", &body).await, field, &case).await;
        }
        assert_eq!(
            count(&app, &t, "/v1/api_keys").await,
            keys_before,
            "{backend}"
        );
    }
}

#[tokio::test]
async fn a_nul_in_a_string_filter_is_a_422_naming_the_parameter() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        app.create_account(&t, "Globex").await;
        app.create_person(&t, "Ada", None).await;
        for (path, field) in [
            ("/v1/accounts?name_prefix=%00", "name_prefix"),
            ("/v1/accounts?name_prefix=glo%00", "name_prefix"),
            ("/v1/accounts?name_prefix=glo%00&page=1", "name_prefix"),
            (
                "/v1/accounts?name_prefix=glo%00&sort=updated_at",
                "name_prefix",
            ),
            ("/v1/accounts?domain=glo%00bex.com", "domain"),
            ("/v1/people?email=a%00da@acme.com", "email"),
            (
                "/v1/people?email=a%00da@acme.com&include_account_name=true",
                "email",
            ),
        ] {
            let case = format!("{backend}: GET {path}");
            refused(app.get(&t, path).await, field, &case).await;
        }
    }
}

#[tokio::test]
async fn a_nul_in_an_enum_cursor_or_id_parameter_is_a_400_not_a_storage_error() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        for (path, kind) in [
            ("/v1/people?stage=lead%00", "invalid-parameter"),
            ("/v1/activities?kind=call%00", "invalid-parameter"),
            ("/v1/activities/feed?kind=call%00", "invalid-parameter"),
            ("/v1/accounts?cursor=%00", "invalid-cursor"),
            ("/v1/accounts/%00", "invalid-parameter"),
        ] {
            problem(app.get(&t, path).await, 400, kind).await;
        }
    }
}
