//! `fields` and `expand` on the reads of people and activities: sparse fieldsets, embedded
//! accounts and people, their media type, ETags, cursors, prices, tenancy, and the bytes a
//! mobile page saves.

use std::collections::BTreeSet;

use api::auth::Scope;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::{
    TestApp, TestTenant, backends, error_fields, header, ok_json, problem, s, spawn_app,
};

const PARTIAL: &str = "application/vnd.tenantry.partial+json";
const FULL: &str = "application/json; charset=utf-8";

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k.as_str())
        .collect();
    keys.sort_unstable();
    keys
}

/// The items of a list page.
fn items(page: &Value) -> Vec<Value> {
    page["data"].as_array().cloned().unwrap_or_default()
}

/// `GET path` as `token`, with `If-None-Match` when given: the response's status, media
/// type, ETag and JSON body (null when empty).
async fn read(app: &TestApp, token: &str, path: &str, if_none_match: Option<&str>) -> Read {
    let mut req = app.authed(Method::GET, path, token);
    if let Some(tag) = if_none_match {
        req = req.header("if-none-match", tag);
    }
    let resp = req.send().await.expect("sent");
    Read::of(resp).await
}

#[derive(Debug)]
struct Read {
    status: u16,
    content_type: String,
    etag: String,
    cost: String,
    link: String,
    body: Value,
}

impl Read {
    async fn of(resp: Response) -> Self {
        let (status, content_type, etag, cost, link) = (
            resp.status().as_u16(),
            header(&resp, "content-type"),
            header(&resp, "etag"),
            header(&resp, "x-ratelimit-cost"),
            header(&resp, "link"),
        );
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            content_type,
            etag,
            cost,
            link,
            body,
        }
    }

    /// Asserts a 200 in `content_type` and returns the body.
    fn ok(self, content_type: &str) -> Value {
        assert_eq!(self.status, 200, "{}", self.body);
        assert_eq!(self.content_type, content_type, "{}", self.body);
        self.body
    }
}

/// A person with every property set, at `account`.
async fn full_person(app: &TestApp, t: &TestTenant, first: &str, account: Option<&str>) -> Value {
    let body = json!({
        "first_name": first, "last_name": "Lovelace", "email": format!("{first}@example.com"),
        "title": "CTO", "phone": "+1 555 010 2030", "stage": "qualified", "account_id": account,
    });
    ok_json(app.post(t, "/v1/people", &body).await, 201).await
}

#[tokio::test]
async fn fields_keep_the_named_properties_with_id_and_version_on_reads_and_lists() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let globex = app.create_account(&t, "Globex").await;
        let ada = full_person(&app, &t, "ada", Some(s(&globex, "id"))).await;
        let grace = full_person(&app, &t, "grace", None).await;
        let path = format!("/v1/people/{}", s(&ada, "id"));

        // Without the parameters: the full representation, as before.
        let full = read(&app, &t.token, &path, None).await.ok(FULL);
        assert_eq!(full, ada);
        assert!(full.get("account").is_none());

        let partial = read(
            &app,
            &t.token,
            &format!("{path}?fields=first_name,email"),
            None,
        )
        .await
        .ok(PARTIAL);
        assert_eq!(keys(&partial), ["email", "first_name", "id", "version"]);
        for key in keys(&partial) {
            assert_eq!(partial[key], full[key], "{key}");
        }
        // `id` (and `version`) always come; naming them is allowed, repeating a name too.
        let bare = read(&app, &t.token, &format!("{path}?fields=id"), None)
            .await
            .ok(PARTIAL);
        assert_eq!(keys(&bare), ["id", "version"]);
        let nullable = read(
            &app,
            &t.token,
            &format!(
                "/v1/people/{}?fields=account_id,title,title",
                s(&grace, "id")
            ),
            None,
        )
        .await
        .ok(PARTIAL);
        assert_eq!(
            nullable,
            json!({"id": grace["id"], "account_id": null, "title": "CTO", "version": 1}),
            "a kept property that is null is sent as null"
        );

        // Lists: every item shaped, the envelope as ever.
        let page = read(&app, &t.token, "/v1/people?limit=1&fields=last_name", None)
            .await
            .ok(PARTIAL);
        assert_eq!(keys(&page), ["data", "has_more", "next_cursor"]);
        assert_eq!(keys(&items(&page)[0]), ["id", "last_name", "version"]);
        // Offset pages too.
        let offset = read(
            &app,
            &t.token,
            "/v1/people?page=2&limit=1&fields=email",
            None,
        )
        .await
        .ok(PARTIAL);
        assert_eq!(
            items(&offset),
            [json!({"id": grace["id"], "email": "grace@example.com", "version": 1})]
        );
        // Sync mode adds what a sync client needs: `updated_at` and `deleted_at`.
        let sync = read(
            &app,
            &t.token,
            "/v1/people?sort=updated_at&fields=first_name",
            None,
        )
        .await;
        let sync = sync.ok(PARTIAL);
        for item in items(&sync) {
            assert_eq!(
                keys(&item),
                ["deleted_at", "first_name", "id", "updated_at", "version"]
            );
        }
        assert_eq!(items(&sync).len(), 2);

        // Activities alike.
        let body = json!({"person_id": ada["id"], "kind": "note", "subject": "Notes", "body": "Long notes."});
        let activity = ok_json(app.post(&t, "/v1/activities", &body).await, 201).await;
        let one = read(
            &app,
            &t.token,
            &format!("/v1/activities/{}?fields=subject", s(&activity, "id")),
            None,
        )
        .await
        .ok(PARTIAL);
        assert_eq!(
            one,
            json!({"id": activity["id"], "subject": "Notes", "version": 1})
        );
        let list = read(
            &app,
            &t.token,
            "/v1/activities?fields=kind,occurred_at",
            None,
        )
        .await
        .ok(PARTIAL);
        assert_eq!(
            items(&list),
            [
                json!({"id": activity["id"], "kind": "note", "occurred_at": activity["occurred_at"], "version": 1})
            ]
        );
        let plain = read(&app, &t.token, "/v1/activities", None).await.ok(FULL);
        assert_eq!(items(&plain), [activity]);
    }
}

#[tokio::test]
async fn unknown_empty_or_repeated_names_are_a_422_naming_the_parameter_and_cost_1() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let ada = app.create_person(&t, "Ada", None).await;
        let activity = app.create_activity(&t, s(&ada, "id"), "Call").await;
        let person = format!("/v1/people/{}", s(&ada, "id"));
        let cases = [
            (
                "/v1/people?fields=first_name,nickname".to_owned(),
                vec![("fields", "unknown_field")],
            ),
            (format!("{person}?fields="), vec![("fields", "empty_name")]),
            (
                format!("{person}?fields=first_name,"),
                vec![("fields", "empty_name")],
            ),
            (
                "/v1/people?fields=first_name,%20email".to_owned(),
                vec![("fields", "unknown_field")],
            ),
            (
                "/v1/people?fields=email&fields=title".to_owned(),
                vec![("fields", "repeated")],
            ),
            (
                format!("{person}?expand=owner"),
                vec![("expand", "unknown_expansion")],
            ),
            (
                "/v1/people?fields=Email&expand=account,person".to_owned(),
                vec![("fields", "unknown_field"), ("expand", "unknown_expansion")],
            ),
            // Another resource's names are not this one's.
            (
                "/v1/activities?fields=first_name".to_owned(),
                vec![("fields", "unknown_field")],
            ),
            (
                format!("/v1/activities/{}?expand=account", s(&activity, "id")),
                vec![("expand", "unknown_expansion")],
            ),
        ];
        for (path, expected) in cases {
            let resp = app.get(&t, &path).await;
            assert_eq!(header(&resp, "x-ratelimit-cost"), "1", "{path}");
            let p = problem(resp, 422, "validation-failed").await;
            let got: Vec<(String, String)> = p["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| (s(e, "field").to_owned(), s(e, "code").to_owned()))
                .collect();
            let expected: Vec<(String, String)> = expected
                .iter()
                .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
                .collect();
            assert_eq!(got, expected, "{path}: {p}");
        }
        let p = problem(
            app.get(&t, "/v1/people?fields=first_name,nickname").await,
            422,
            "validation-failed",
        )
        .await;
        let message = s(&p["errors"][0], "message");
        assert!(
            message.contains("`nickname`") && message.contains("first_name"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn expand_embeds_the_account_or_person_in_one_read_or_null_and_needs_its_scope() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let globex = ok_json(
            app.post(&t, "/v1/accounts", &json!({"name": "Globex", "domain": "globex.com", "custom_fields": {"tier": "gold"}}))
                .await,
            201,
        )
        .await;
        let ada = full_person(&app, &t, "ada", Some(s(&globex, "id"))).await;
        let grace = full_person(&app, &t, "grace", None).await;
        let embedded = json!({"id": globex["id"], "name": "Globex", "domain": "globex.com"});

        let read_ada = read(
            &app,
            &t.token,
            &format!("/v1/people/{}?expand=account", s(&ada, "id")),
            None,
        )
        .await
        .ok(PARTIAL);
        let mut expected = ada.clone();
        expected["account"] = embedded.clone();
        assert_eq!(read_ada, expected, "every property, and the account");
        let read_grace = read(
            &app,
            &t.token,
            &format!("/v1/people/{}?expand=account", s(&grace, "id")),
            None,
        )
        .await
        .ok(PARTIAL);
        assert_eq!(read_grace["account"], Value::Null);

        for path in [
            "/v1/people?fields=first_name&expand=account",
            "/v1/people?fields=first_name&expand=account&page=1",
            "/v1/people?fields=first_name&expand=account&include_account_name=true",
        ] {
            let page = read(&app, &t.token, path, None).await.ok(PARTIAL);
            let rows = items(&page);
            assert_eq!(
                rows.iter().map(keys).collect::<Vec<_>>(),
                [["account", "first_name", "id", "version"]; 2],
                "{path}"
            );
            assert_eq!(
                (&rows[0]["account"], &rows[1]["account"]),
                (&embedded, &Value::Null),
                "{path}"
            );
        }
        // With `include_account_name`, the name is there too when asked for.
        let page = read(
            &app,
            &t.token,
            "/v1/people?fields=account_name&expand=account&include_account_name=true",
            None,
        )
        .await
        .ok(PARTIAL);
        assert_eq!(items(&page)[0]["account_name"], "Globex");

        // A token for people alone does not read accounts through them.
        let people_only = app.token(&t, &[Scope::PeopleRead]);
        let p = problem(
            app.authed(Method::GET, "/v1/people?expand=account", &people_only)
                .send()
                .await
                .expect("sent"),
            403,
            "insufficient-scope",
        )
        .await;
        assert!(s(&p, "detail").contains("accounts:read"), "{p}");
        read(&app, &people_only, "/v1/people?fields=first_name", None)
            .await
            .ok(PARTIAL);

        // Activities embed their person.
        let call = app.create_activity(&t, s(&ada, "id"), "Call").await;
        let call_path = format!(
            "/v1/activities/{}?fields=subject&expand=person",
            s(&call, "id")
        );
        let summary = json!({
            "id": ada["id"], "account_id": globex["id"], "first_name": "ada",
            "last_name": "Lovelace", "email": "ada@example.com", "title": "CTO",
        });
        assert_eq!(
            read(&app, &t.token, &call_path, None).await.ok(PARTIAL),
            json!({"id": call["id"], "subject": "Call", "version": 1, "person": summary})
        );
        let list = read(&app, &t.token, "/v1/activities?expand=person", None)
            .await
            .ok(PARTIAL);
        let mut expected = call.clone();
        expected["person"] = summary.clone();
        assert_eq!(items(&list), [expected]);
        let activities_only = app.token(&t, &[Scope::ActivitiesRead]);
        problem(
            app.authed(Method::GET, &call_path, &activities_only)
                .send()
                .await
                .expect("sent"),
            403,
            "insufficient-scope",
        )
        .await;

        // A deleted account or person is embedded as null.
        app.delete(&t, &format!("/v1/accounts/{}", s(&globex, "id")))
            .await;
        let after = read(
            &app,
            &t.token,
            &format!("/v1/people/{}?expand=account", s(&ada, "id")),
            None,
        )
        .await
        .ok(PARTIAL);
        assert_eq!(after["account"], Value::Null);
        app.delete(&t, &format!("/v1/people/{}", s(&ada, "id")))
            .await;
        let orphan = read(&app, &t.token, &call_path, None).await.ok(PARTIAL);
        assert_eq!(orphan["person"], Value::Null);
        let page = read(&app, &t.token, "/v1/activities?expand=person&page=1", None)
            .await
            .ok(PARTIAL);
        assert_eq!(items(&page)[0]["person"], Value::Null);
    }
}

#[tokio::test]
async fn expand_never_embeds_or_reveals_another_tenants_rows() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let (a, b) = (app.tenant("victim").await, app.tenant("attacker").await);
        let a_account = app.create_account(&a, "Victim Corp").await;
        let a_person = app
            .create_person(&a, "Vic", Some(s(&a_account, "id")))
            .await;
        let a_activity = app
            .create_activity(&a, s(&a_person, "id"), "Secret call")
            .await;
        let b_person = app.create_person(&b, "Eve", None).await;
        let b_activity = app.create_activity(&b, s(&b_person, "id"), "Mine").await;
        let a_person_path = format!("/v1/people/{}?expand=account", s(&a_person, "id"));
        let before = read(&app, &a.token, &a_person_path, None).await;

        // B cannot link A's account, so nothing of A's can be embedded in B's rows.
        let p = problem(
            app.patch(
                &b,
                &format!("/v1/people/{}", s(&b_person, "id")),
                &json!({"account_id": a_account["id"]}),
            )
            .await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(error_fields(&p), ["account_id"]);
        // A's rows by id: 404, shaped or not.
        for path in [
            a_person_path.clone(),
            format!(
                "/v1/activities/{}?expand=person&fields=subject",
                s(&a_activity, "id")
            ),
        ] {
            problem(app.get(&b, &path).await, 404, "not-found").await;
        }
        // B's lists, expanded: B's rows only, and not a trace of A's.
        for path in [
            "/v1/people?expand=account",
            "/v1/people?expand=account&page=1",
            "/v1/people?expand=account&fields=account_id&sort=updated_at",
            "/v1/activities?expand=person",
            "/v1/activities?expand=person&page=1",
        ] {
            let page = read(&app, &b.token, path, None).await.ok(PARTIAL);
            let text = page.to_string();
            for secret in [&a_account["id"], &a_person["id"], &a_activity["id"]] {
                assert!(
                    !text.contains(secret.as_str().unwrap_or("?")),
                    "{path}: {text}"
                );
            }
            assert!(
                !text.contains("Victim") && !text.contains("Vic\""),
                "{path}: {text}"
            );
            assert_eq!(items(&page).len(), 1, "{path}");
        }
        let b_read = read(
            &app,
            &b.token,
            &format!("/v1/activities/{}?expand=person", s(&b_activity, "id")),
            None,
        )
        .await
        .ok(PARTIAL);
        assert_eq!(b_read["person"]["id"], b_person["id"]);

        // A's rows are as they were.
        let after = read(&app, &a.token, &a_person_path, None).await;
        assert_eq!((after.body, after.etag), (before.body, before.etag));
    }
}

#[tokio::test]
async fn a_shaped_read_has_a_weak_etag_of_its_own_so_304s_stay_correct() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let globex = app.create_account(&t, "Globex").await;
        let ada = app.create_person(&t, "Ada", Some(s(&globex, "id"))).await;
        let path = format!("/v1/people/{}", s(&ada, "id"));
        let names = format!("{path}?fields=first_name");
        let embedded = format!("{path}?fields=first_name&expand=account");

        let full = read(&app, &t.token, &path, None).await;
        assert_eq!(full.etag, "\"1\"");
        let shaped = read(&app, &t.token, &names, None).await;
        let with_account = read(&app, &t.token, &embedded, None).await;
        let tags: BTreeSet<&str> = [&full.etag, &shaped.etag, &with_account.etag]
            .into_iter()
            .map(String::as_str)
            .collect();
        assert_eq!(tags.len(), 3, "one ETag per representation: {tags:?}");
        assert!(shaped.etag.starts_with("W/\"1-"), "{}", shaped.etag);

        // Each ETag answers 304 (free) for its own representation only.
        let again = read(&app, &t.token, &names, Some(&shaped.etag)).await;
        assert_eq!((again.status, again.cost.as_str()), (304, "0"));
        assert_eq!(again.etag, shaped.etag);
        assert_eq!(
            read(&app, &t.token, &names, Some(&full.etag)).await.status,
            200
        );
        assert_eq!(
            read(&app, &t.token, &path, Some(&shaped.etag)).await.status,
            200
        );
        assert_eq!(
            read(&app, &t.token, &embedded, Some(&shaped.etag))
                .await
                .status,
            200
        );
        assert_eq!(
            read(&app, &t.token, &embedded, Some(&with_account.etag))
                .await
                .status,
            304
        );

        // An embedded account's change is a change of the representation that embeds it.
        app.patch(
            &t,
            &format!("/v1/accounts/{}", s(&globex, "id")),
            &json!({"name": "Globex 2"}),
        )
        .await;
        let renamed = read(&app, &t.token, &embedded, Some(&with_account.etag)).await;
        assert_eq!(renamed.status, 200);
        assert_eq!(renamed.body["account"]["name"], "Globex 2");
        assert_ne!(renamed.etag, with_account.etag);
        // The person's own change, of every representation.
        assert_eq!(
            read(&app, &t.token, &names, Some(&shaped.etag))
                .await
                .status,
            304
        );
        let patched = app.patch(&t, &path, &json!({"title": "CTO"})).await;
        assert_eq!(header(&patched, "etag"), "\"2\"");
        let changed = read(&app, &t.token, &names, Some(&shaped.etag)).await;
        assert_eq!(changed.status, 200);
        assert!(changed.etag.starts_with("W/\"2-"), "{}", changed.etag);

        // A write's precondition is the version the shaped body carries.
        let version = changed.body["version"].as_i64().unwrap_or_default();
        let update = app
            .authed(Method::PATCH, &path, &t.token)
            .header("if-match", format!("\"{version}\""))
            .json(&json!({"stage": "customer"}))
            .send()
            .await
            .expect("sent");
        assert_eq!(update.status().as_u16(), 200);
    }
}

#[tokio::test]
async fn cursor_pages_with_fields_and_expand_visit_every_row_once_whatever_the_shape() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let globex = app.create_account(&t, "Globex").await;
        let mut created = Vec::new();
        for i in 0..5 {
            let account = (i % 2 == 0).then(|| s(&globex, "id"));
            created.push(
                s(
                    &app.create_person(&t, &format!("P{i}"), account).await,
                    "id",
                )
                .to_owned(),
            );
        }
        // Through `next_cursor`, changing the shape from page to page: cursors are bound to
        // the filters, not to `fields` or `expand`.
        let shapes = [
            "fields=first_name&expand=account",
            "fields=last_name",
            "expand=account",
        ];
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for page_no in 0.. {
            let shape = shapes[page_no % shapes.len()];
            let path = match &cursor {
                Some(c) => format!("/v1/people?limit=2&{shape}&cursor={c}"),
                None => format!("/v1/people?limit=2&{shape}"),
            };
            let page = read(&app, &t.token, &path, None).await.ok(PARTIAL);
            for item in items(&page) {
                assert_eq!(
                    item.get("account").is_some(),
                    shape.contains("expand"),
                    "{item}"
                );
                seen.push(s(&item, "id").to_owned());
            }
            if page["has_more"] != true {
                break;
            }
            cursor = page["next_cursor"].as_str().map(str::to_owned);
        }
        assert_eq!(seen, created);

        // Through the `Link` header: it keeps `fields` and `expand`.
        let mut seen = Vec::new();
        let mut path = "/v1/people?limit=2&fields=first_name&expand=account".to_owned();
        loop {
            let page = read(&app, &t.token, &path, None).await;
            let link = page.link.clone();
            let body = page.ok(PARTIAL);
            seen.extend(items(&body).iter().map(|i| {
                assert_eq!(keys(i), ["account", "first_name", "id", "version"]);
                s(i, "id").to_owned()
            }));
            if link.is_empty() {
                break;
            }
            let url = link
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or_default();
            assert!(
                url.contains("fields=first_name") && url.contains("expand=account"),
                "{link}"
            );
            path = url.to_owned();
        }
        assert_eq!(seen, created);

        // A sync walk with fields still hands out a cursor on its last, empty page.
        let sync = read(
            &app,
            &t.token,
            "/v1/people?sort=updated_at&fields=first_name",
            None,
        )
        .await
        .ok(PARTIAL);
        let cursor = s(&sync, "next_cursor").to_owned();
        let empty = read(
            &app,
            &t.token,
            &format!("/v1/people?fields=first_name&cursor={cursor}"),
            None,
        )
        .await;
        assert_eq!(empty.cost, "0", "an empty sync page is free, shaped or not");
        assert!(items(&empty.ok(PARTIAL)).is_empty());
    }
}

#[tokio::test]
async fn a_shaped_read_costs_what_the_plain_one_does() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let ada = app.create_person(&t, "Ada", None).await;
        let call = app.create_activity(&t, s(&ada, "id"), "Call").await;
        for (plain, shaped) in [
            (
                format!("/v1/people/{}", s(&ada, "id")),
                format!(
                    "/v1/people/{}?fields=first_name&expand=account",
                    s(&ada, "id")
                ),
            ),
            (
                "/v1/people?limit=200".to_owned(),
                "/v1/people?limit=200&fields=first_name&expand=account".to_owned(),
            ),
            (
                "/v1/people?limit=100&page=2".to_owned(),
                "/v1/people?limit=100&page=2&expand=account".to_owned(),
            ),
            (
                format!("/v1/activities/{}", s(&call, "id")),
                format!("/v1/activities/{}?expand=person", s(&call, "id")),
            ),
            (
                "/v1/activities?limit=150".to_owned(),
                "/v1/activities?limit=150&fields=subject&expand=person".to_owned(),
            ),
        ] {
            let plain_cost = read(&app, &t.token, &plain, None).await.cost;
            let shaped_cost = read(&app, &t.token, &shaped, None).await.cost;
            assert!(!plain_cost.is_empty());
            assert_eq!(plain_cost, shaped_cost, "{shaped}");
        }
    }
}

/// The figures the issue asks for: a typical mobile list page (50 people, every property
/// set, at accounts) in full and with `fields=first_name,last_name,email`, raw and gzipped;
/// and 50 activities with notes, in full and with `fields=kind,subject,occurred_at`.
#[tokio::test]
async fn a_mobile_page_with_fields_is_smaller_raw_and_gzipped() {
    let backend = backends().remove(0);
    let app = spawn_app(&backend).await;
    let t = app.tenant("acme").await;
    // Varied, deterministic data: names, companies and notes drawn from short lists.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut pick = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % n as u64).unwrap_or_default()
    };
    let firsts = [
        "Ada",
        "Grace",
        "Alan",
        "Katherine",
        "Linus",
        "Margaret",
        "Dennis",
        "Barbara",
        "Edsger",
        "Frances",
        "Tim",
        "Radia",
        "Ken",
        "Hedy",
        "Donald",
        "Shafi",
        "John",
        "Sophie",
    ];
    let lasts = [
        "Lovelace",
        "Hopper",
        "Turing",
        "Johnson",
        "Torvalds",
        "Hamilton",
        "Ritchie",
        "Liskov",
        "Dijkstra",
        "Allen",
        "Berners-Lee",
        "Perlman",
        "Thompson",
        "Lamarr",
        "Knuth",
        "Goldwasser",
    ];
    let titles = [
        "VP Sales",
        "Head of Procurement",
        "Chief Technology Officer",
        "Office Manager",
        "Senior Software Engineer",
        "Director of Operations",
        "Account Executive",
        "CFO",
    ];
    let companies = [
        "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Acme", "Tyrell",
        "Soylent",
    ];
    let stages = ["lead", "contacted", "qualified", "customer", "lost"];
    let mut accounts = Vec::new();
    for (i, company) in companies.iter().enumerate() {
        let tier = ["gold", "silver", "bronze"][i % 3];
        let body = json!({
            "name": format!("{company} Corporation"), "domain": format!("{}.com", company.to_lowercase()),
            "custom_fields": {"tier": tier, "seats": 40 + 7 * i, "region": "EMEA"},
        });
        accounts.push(
            s(
                &ok_json(app.post(&t, "/v1/accounts", &body).await, 201).await,
                "id",
            )
            .to_owned(),
        );
    }
    let mut people = Vec::new();
    for _ in 0..50 {
        let (first, last, company) = (
            firsts[pick(firsts.len())],
            lasts[pick(lasts.len())],
            pick(companies.len()),
        );
        let body = json!({
            "first_name": first, "last_name": last,
            "email": format!("{}.{}@{}.com", first.to_lowercase(), last.to_lowercase(), companies[company].to_lowercase()),
            "title": titles[pick(titles.len())],
            "phone": format!("+1 ({}) {}-{:04}", 200 + pick(700), 200 + pick(700), pick(10_000)),
            "stage": stages[pick(stages.len())], "account_id": accounts[company],
        });
        people.push(
            s(
                &ok_json(app.post(&t, "/v1/people", &body).await, 201).await,
                "id",
            )
            .to_owned(),
        );
    }
    let notes = [
        "Discussed the pilot scope and the security review; legal wants the DPA first.",
        "Pricing call: they compare us with two vendors, decision expected next quarter.",
        "Demo went well, the team asked for SSO and an export of the activity history.",
        "Left a voicemail, follow up on Thursday with the case study they asked for.",
        "Renewal at risk: budget freeze until the new fiscal year, champion is leaving.",
    ];
    for (i, person) in people.iter().enumerate() {
        let body: Vec<&str> = (0..4).map(|_| notes[pick(notes.len())]).collect();
        let kind = ["call", "email", "note", "meeting"][pick(4)];
        let body = json!({
            "person_id": person, "kind": kind,
            "subject": format!("Follow-up {i}: {}", titles[pick(titles.len())]),
            "body": body.join("\n"),
        });
        ok_json(app.post(&t, "/v1/activities", &body).await, 201).await;
    }

    let size = |path: String, gzip: bool| {
        let mut req = app.authed(Method::GET, &path, &t.token);
        if gzip {
            req = req.header("accept-encoding", "gzip");
        }
        async move {
            let resp = req.send().await.expect("sent");
            assert_eq!(resp.status().as_u16(), 200);
            if gzip {
                assert_eq!(header(&resp, "content-encoding"), "gzip");
            }
            resp.bytes().await.expect("body").len()
        }
    };
    let mut lines = Vec::new();
    for (what, full, small) in [
        (
            "people (limit=50) vs fields=first_name,last_name,email",
            "/v1/people?limit=50".to_owned(),
            "/v1/people?limit=50&fields=first_name,last_name,email".to_owned(),
        ),
        (
            "people with account names vs fields=first_name,last_name&expand=account",
            "/v1/people?limit=50&include_account_name=true".to_owned(),
            "/v1/people?limit=50&fields=first_name,last_name&expand=account".to_owned(),
        ),
        (
            "activities with notes (limit=50) vs fields=kind,subject,occurred_at",
            "/v1/activities?limit=50".to_owned(),
            "/v1/activities?limit=50&fields=kind,subject,occurred_at".to_owned(),
        ),
    ] {
        let (raw_full, raw_small) = (
            size(full.clone(), false).await,
            size(small.clone(), false).await,
        );
        let (gz_full, gz_small) = (size(full, true).await, size(small, true).await);
        let saved = |a: usize, b: usize| 100.0 * (a as f64 - b as f64) / a as f64;
        lines.push(format!(
            "{what}: raw {raw_full} → {raw_small} B (−{:.0}%), gzip {gz_full} → {gz_small} B (−{:.0}%)",
            saved(raw_full, raw_small),
            saved(gz_full, gz_small)
        ));
        assert!(
            raw_small * 10 < raw_full * 7,
            "{}",
            lines.last().map_or("", String::as_str)
        );
        assert!(
            gz_small < gz_full,
            "{}",
            lines.last().map_or("", String::as_str)
        );
    }
    println!("bytes of a mobile page ({backend}):");
    for line in lines {
        println!("  {line}");
    }
}
