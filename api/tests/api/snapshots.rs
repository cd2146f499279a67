//! JSON bodies as clients see them, snapshot-tested with `insta`: resources created and
//! read (in full, and shaped by `fields` / `expand`), list pages (with `next_cursor`,
//! `has_more` and `Link`), the joined reads, API keys, and problem details. A change to any field's name, type, presence or order shows
//! up as a diff in `snapshots/`.
//!
//! What changes from run to run (ids, times, cursors, request ids, secrets) is redacted,
//! after checking its shape, so one snapshot serves SQLite and PostgreSQL alike; each is
//! named (never after the backend) and asserted once per backend. Under `CI=true` a
//! mismatch or a missing snapshot fails; locally `INSTA_UPDATE=always` (or
//! `cargo insta review`) rewrites them.

use insta::internals::Content;
use reqwest::{Method, Response};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::support::{backends, header, s, spawn_app, spawn_app_with};

/// Response headers worth pinning: the rest (rate-limit budgets, dates) vary by timing.
const HEADERS: [&str; 7] = [
    "content-type",
    "etag",
    "link",
    "location",
    "www-authenticate",
    "retry-after",
    "idempotent-replayed",
];

/// Fields that hold a UUID (or null).
const UUID_FIELDS: [&str; 7] = [
    "id",
    "account_id",
    "person_id",
    "user_id",
    "owner_id",
    "created_by",
    "request_id",
];

/// Fields that hold an RFC 3339 time (or null).
const TIME_FIELDS: [&str; 6] = [
    "created_at",
    "updated_at",
    "occurred_at",
    "deleted_at",
    "revoked_at",
    "last_used_at",
];

/// `status`, the pinned headers that are present, and the JSON body (null when empty).
async fn exchange(resp: Response) -> Value {
    let status = resp.status().as_u16();
    let headers: Map<String, Value> = HEADERS
        .iter()
        .map(|name| (*name, header(&resp, name)))
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| (name.to_owned(), Value::String(value)))
        .collect();
    let request_id = header(&resp, "x-request-id");
    let text = resp.text().await.expect("body");
    let body: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    // Redacted in the snapshot, so checked here: a problem names the request it answers.
    if let Some(id) = body.get("request_id") {
        assert_eq!(id, request_id.as_str(), "{text}");
    }
    json!({ "status": status, "headers": headers, "body": body })
}

/// `path` with each UUID segment replaced by `[uuid]`.
fn scrub_uuids(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            if Uuid::parse_str(segment).is_ok() {
                "[uuid]"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A redaction that checks a string with `valid` and replaces it with `placeholder`;
/// null (an absent link, an unset time) stays null so the snapshot still shows it.
fn redact_str(
    placeholder: &'static str,
    valid: fn(&str) -> bool,
) -> impl Fn(Content, insta::internals::ContentPath<'_>) -> Content + Send + Sync + 'static {
    move |value, path| match value.as_str() {
        Some(text) => {
            assert!(valid(text), "{path} is not a valid {placeholder}: {text:?}");
            Content::from(placeholder)
        }
        None => value,
    }
}

fn is_uuid(text: &str) -> bool {
    Uuid::parse_str(text).is_ok()
}

fn is_time(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok()
}

/// An opaque cursor: base64url with a signature part.
fn is_cursor(text: &str) -> bool {
    !text.is_empty()
        && text.contains('.')
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Snapshot settings: every volatile field redacted after its shape is checked.
fn redactions() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_sort_maps(true);
    settings.set_omit_expression(true);
    for field in UUID_FIELDS {
        settings.add_dynamic_redaction(&format!(".**.{field}"), redact_str("[uuid]", is_uuid));
    }
    for field in TIME_FIELDS {
        settings.add_dynamic_redaction(&format!(".**.{field}"), redact_str("[time]", is_time));
    }
    settings.add_dynamic_redaction(".body.next_cursor", redact_str("[cursor]", is_cursor));
    settings.add_dynamic_redaction(
        ".body.secret",
        redact_str("[secret]", |t| t.starts_with("tnt_")),
    );
    settings.add_dynamic_redaction(
        ".**.prefix",
        redact_str("[prefix]", |t| t.starts_with("tnt_")),
    );
    // `</v1/people?limit=2&cursor=…>; rel="next"`: the cursor is the last query parameter.
    settings.add_dynamic_redaction(".headers.link", |value, _| {
        let link = value.as_str().unwrap_or_default();
        let (start, rest) = link
            .split_once("cursor=")
            .unwrap_or_else(|| panic!("a next link carries a cursor: {link}"));
        let (cursor, end) = rest.split_once('>').unwrap_or_default();
        assert!(is_cursor(cursor), "{link}");
        format!("{start}cursor=[cursor]>{end}")
    });
    for path in [".headers.location", ".body.instance"] {
        settings.add_dynamic_redaction(path, |value, _| {
            scrub_uuids(value.as_str().unwrap_or_default())
        });
    }
    settings
}

/// Asserts `value` matches the snapshot `name`, described by `what` (the request).
fn snapshot(name: &str, what: &str, value: &Value) {
    let mut settings = redactions();
    settings.set_description(what);
    settings.bind(|| insta::assert_json_snapshot!(name, value));
}

#[tokio::test]
async fn created_and_read_resources_match_their_snapshots() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;

        let body = json!({
            "name": "Globex",
            "domain": "globex.com",
            "owner_id": t.admin_id,
            "custom_fields": {"tier": "gold", "seats": 40},
        });
        let created = exchange(app.post(&t, "/v1/accounts", &body).await).await;
        snapshot("account_created", "POST /v1/accounts", &created);
        let account = &created["body"];
        let read = exchange(
            app.get(&t, &format!("/v1/accounts/{}", s(account, "id")))
                .await,
        )
        .await;
        snapshot("account_read", "GET /v1/accounts/{id}", &read);
        assert_eq!(
            read["body"], created["body"],
            "a read returns what was created"
        );

        let body = json!({
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": "ada@example.com",
            "title": "Analyst",
            "phone": "+44 20 7946 0000",
            "stage": "qualified",
            "account_id": s(account, "id"),
        });
        let created = exchange(app.post(&t, "/v1/people", &body).await).await;
        snapshot("person_created", "POST /v1/people", &created);
        let person = &created["body"];
        let read = exchange(
            app.get(&t, &format!("/v1/people/{}", s(person, "id")))
                .await,
        )
        .await;
        snapshot("person_read", "GET /v1/people/{id}", &read);
        let shaped = exchange(
            app.get(
                &t,
                &format!(
                    "/v1/people/{}?fields=first_name,email&expand=account",
                    s(person, "id")
                ),
            )
            .await,
        )
        .await;
        snapshot(
            "person_read_shaped",
            "GET /v1/people/{id}?fields=first_name,email&expand=account",
            &shaped,
        );

        let body = json!({
            "person_id": s(person, "id"),
            "kind": "meeting",
            "subject": "Quarterly review",
            "body": "Agenda: renewal.",
            "occurred_at": "2026-01-15T10:30:00Z",
        });
        let created = exchange(app.post(&t, "/v1/activities", &body).await).await;
        snapshot("activity_created", "POST /v1/activities", &created);
        let read = exchange(
            app.get(&t, &format!("/v1/activities/{}", s(&created["body"], "id")))
                .await,
        )
        .await;
        snapshot("activity_read", "GET /v1/activities/{id}", &read);
        let shaped = exchange(
            app.get(
                &t,
                &format!(
                    "/v1/activities/{}?fields=kind,subject&expand=person",
                    s(&created["body"], "id")
                ),
            )
            .await,
        )
        .await;
        snapshot(
            "activity_read_shaped",
            "GET /v1/activities/{id}?fields=kind,subject&expand=person",
            &shaped,
        );
    }
}

#[tokio::test]
async fn list_pages_and_joined_reads_match_their_snapshots() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let globex = app.create_account(&t, "Globex").await;
        app.create_account(&t, "Initech").await;
        app.create_account(&t, "Umbrella").await;

        let first = exchange(app.get(&t, "/v1/accounts?limit=2").await).await;
        snapshot("accounts_first_page", "GET /v1/accounts?limit=2", &first);
        let cursor = s(&first["body"], "next_cursor");
        let last = exchange(
            app.get(&t, &format!("/v1/accounts?limit=2&cursor={cursor}"))
                .await,
        )
        .await;
        snapshot(
            "accounts_last_page",
            "GET /v1/accounts?limit=2&cursor={next_cursor}",
            &last,
        );

        let ada = app.create_person(&t, "Ada", Some(s(&globex, "id"))).await;
        let grace = app.create_person(&t, "Grace", None).await;
        let joined = exchange(
            app.get(&t, "/v1/people?include_account_name=true&limit=1")
                .await,
        )
        .await;
        snapshot(
            "people_with_account_names",
            "GET /v1/people?include_account_name=true&limit=1",
            &joined,
        );

        let shaped = exchange(
            app.get(&t, "/v1/people?limit=1&fields=first_name&expand=account")
                .await,
        )
        .await;
        snapshot(
            "people_shaped_page",
            "GET /v1/people?limit=1&fields=first_name&expand=account",
            &shaped,
        );

        app.create_activity(&t, s(&ada, "id"), "Intro call").await;
        app.create_activity(&t, s(&grace, "id"), "Follow-up call")
            .await;
        app.create_activity(&t, s(&ada, "id"), "Demo call").await;
        let feed = exchange(app.get(&t, "/v1/activities/feed?limit=2").await).await;
        snapshot(
            "activity_feed_page",
            "GET /v1/activities/feed?limit=2",
            &feed,
        );
    }
}

#[tokio::test]
async fn api_key_bodies_match_their_snapshots_and_never_show_the_secret_again() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let body = json!({"name": "CRM sync", "scopes": ["people:read", "people:write"]});
        let created = exchange(app.post(&t, "/v1/api_keys", &body).await).await;
        let secret = s(&created["body"], "secret");
        assert!(
            secret.starts_with(s(&created["body"]["api_key"], "prefix")),
            "the prefix is the start of the secret"
        );
        snapshot("api_key_created", "POST /v1/api_keys", &created);

        let listed = exchange(app.get(&t, "/v1/api_keys").await).await;
        assert!(!listed.to_string().contains(&secret[12..]));
        snapshot("api_keys_listed", "GET /v1/api_keys", &listed);
    }
}

#[tokio::test]
async fn problem_bodies_match_their_snapshots() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;

        let body = json!({"first_name": "Ada", "last_name": "", "email": "nope", "phone": "12"});
        let invalid = exchange(app.post(&t, "/v1/people", &body).await).await;
        snapshot(
            "problem_validation_failed",
            "POST /v1/people with invalid fields",
            &invalid,
        );

        let missing = exchange(
            app.get(&t, "/v1/people/01900000-0000-7000-8000-000000000000")
                .await,
        )
        .await;
        snapshot("problem_not_found", "GET /v1/people/{unknown id}", &missing);

        let anonymous = app
            .request(Method::GET, "/v1/people")
            .send()
            .await
            .expect("sent");
        snapshot(
            "problem_unauthenticated",
            "GET /v1/people without credentials",
            &exchange(anonymous).await,
        );

        let malformed = app
            .authed(Method::POST, "/v1/accounts", &t.token)
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .expect("sent");
        snapshot(
            "problem_malformed_json",
            "POST /v1/accounts with a truncated body",
            &exchange(malformed).await,
        );

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
        snapshot(
            "problem_precondition_failed",
            "PATCH /v1/accounts/{id} with a stale If-Match",
            &exchange(stale).await,
        );

        let unknown = exchange(app.get(&t, "/v1/nothing-here").await).await;
        snapshot("problem_unknown_route", "GET /v1/nothing-here", &unknown);
    }
}

#[tokio::test]
async fn the_quota_exceeded_problem_matches_its_snapshot() {
    // The rate limiter is the same on every backend: one run is enough.
    let backend = backends().remove(0);
    let app = spawn_app_with(&backend, |s| s.rate_limit.anonymous_quota = 1).await;
    let first = app
        .request(Method::GET, "/v1/accounts")
        .send()
        .await
        .expect("sent");
    assert_eq!(first.status().as_u16(), 401);
    let refused = app
        .request(Method::GET, "/v1/accounts")
        .send()
        .await
        .expect("sent");
    let mut settings = redactions();
    settings.set_description("GET /v1/accounts over the anonymous budget");
    // The wait depends on the clock: checked, then redacted.
    settings.add_dynamic_redaction(r#".headers["retry-after"]"#, |value, _| {
        let seconds: u64 = value.as_str().unwrap_or_default().parse().expect("seconds");
        assert!((1..=60).contains(&seconds), "Retry-After {seconds}");
        "[seconds]"
    });
    settings.add_dynamic_redaction(".body.detail", |value, _| {
        let detail = value.as_str().unwrap_or_default();
        let (start, _) = detail
            .split_once("retry in ")
            .unwrap_or_else(|| panic!("the detail says when to retry: {detail}"));
        format!("{start}retry in [seconds] s")
    });
    let value = exchange(refused).await;
    settings.bind(|| insta::assert_json_snapshot!("problem_quota_exceeded", value));
}
