//! Cursor and offset pagination, sync mode, cursor binding.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::support::{
    TestApp, TestTenant, backends, error_fields, ok_json, problem, s, spawn_app, spawn_app_with,
};

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| s(p, "id").to_owned())
        .collect()
}

/// Follows `Link: rel="next"` from `path` to the end; returns every page.
async fn walk_links(app: &TestApp, t: &TestTenant, path: &str) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(path) = next.take() {
        let resp = app.get(t, &path).await;
        next = resp
            .headers()
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.strip_prefix('<'))
            .and_then(|l| l.split_once(">; rel=\"next\""))
            .map(|(url, _)| url.to_owned());
        pages.push(ok_json(resp, 200).await);
    }
    pages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_walk_visits_every_row_exactly_once_while_rows_are_inserted_and_updated() {
    for backend in backends() {
        let app = std::sync::Arc::new(spawn_app(&backend).await);
        let t = app.tenant("acme").await;
        let mut originals = Vec::new();
        for i in 0..45 {
            originals
                .push(s(&app.create_person(&t, &format!("P{i}"), None).await, "id").to_owned());
        }

        // A writer running on its own task: after each page it inserts two people and
        // updates two originals (ahead of and behind the walk), then acknowledges.
        let (go_tx, mut go_rx) = mpsc::channel::<usize>(1);
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let writer = {
            let (app, t, originals) = (app.clone(), t.clone(), originals.clone());
            tokio::spawn(async move {
                while let Some(round) = go_rx.recv().await {
                    let (name_a, name_b) = (format!("new{round}a"), format!("new{round}b"));
                    let ahead = format!(
                        "/v1/people/{}",
                        originals[(round * 7 + 40) % originals.len()]
                    );
                    let behind = format!("/v1/people/{}", originals[(round * 3) % originals.len()]);
                    let change = json!({"title": format!("r{round}")});
                    let (_, _, u1, u2) = tokio::join!(
                        app.create_person(&t, &name_a, None),
                        app.create_person(&t, &name_b, None),
                        app.patch(&t, &ahead, &change),
                        app.patch(&t, &behind, &change),
                    );
                    assert_eq!((u1.status().as_u16(), u2.status().as_u16()), (200, 200));
                    if done_tx.send(()).await.is_err() {
                        break;
                    }
                }
            })
        };

        let mut seen: Vec<String> = Vec::new();
        let mut path = "/v1/people?limit=7".to_owned();
        let mut round = 0;
        loop {
            let page = ok_json(app.get(&t, &path).await, 200).await;
            seen.extend(ids(&page));
            if page["has_more"] != true {
                break;
            }
            go_tx.send(round).await.expect("writer alive");
            done_rx.recv().await.expect("writer acknowledged");
            round += 1;
            path = format!("/v1/people?limit=7&cursor={}", s(&page, "next_cursor"));
        }
        drop(go_tx);
        writer.await.expect("writer finished");

        let mut counts: HashMap<&str, usize> = HashMap::new();
        for id in &seen {
            *counts.entry(id.as_str()).or_default() += 1;
        }
        assert!(counts.values().all(|&n| n == 1), "a row was visited twice");
        for id in &originals {
            assert_eq!(counts.get(id.as_str()), Some(&1), "original {id} missed");
        }
        assert!(round >= 6, "the writer ran between pages");
        let mut sorted = seen.clone();
        sorted.sort();
        assert_eq!(seen, sorted, "id order");
    }
}

#[tokio::test]
async fn a_sync_walk_sees_every_change_and_tombstone_and_resumes_from_its_cursor() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let mut people = Vec::new();
        for i in 0..10 {
            people.push(s(&app.create_person(&t, &format!("P{i}"), None).await, "id").to_owned());
        }
        // First full sync.
        let pages = walk_links(
            &app,
            &t,
            "/v1/people?sort=updated_at&updated_after=2000-01-01T00:00:00Z&limit=3",
        )
        .await;
        let first: Vec<String> = pages.iter().flat_map(ids).collect();
        assert_eq!(first, people);
        let cursor = s(pages.last().expect("a page"), "next_cursor").to_owned();
        assert!(!cursor.is_empty(), "the last sync page still has a cursor");

        // Changes after the sync.
        for id in &people[0..3] {
            ok_json(
                app.patch(
                    &t,
                    &format!("/v1/people/{id}"),
                    &json!({"stage": "contacted"}),
                )
                .await,
                200,
            )
            .await;
        }
        for id in &people[7..9] {
            assert_eq!(
                app.delete(&t, &format!("/v1/people/{id}"))
                    .await
                    .status()
                    .as_u16(),
                204
            );
        }
        let newcomer = s(&app.create_person(&t, "New", None).await, "id").to_owned();

        let resumed = ok_json(
            app.get(&t, &format!("/v1/people?sort=updated_at&cursor={cursor}"))
                .await,
            200,
        )
        .await;
        let changed = ids(&resumed);
        let expected: Vec<String> = people[0..3]
            .iter()
            .chain(&people[7..9])
            .cloned()
            .chain([newcomer])
            .collect();
        assert_eq!(changed, expected, "each change once, in change order");
        let tombstones: Vec<bool> = resumed["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["deleted_at"].is_string())
            .collect();
        assert_eq!(tombstones, [false, false, false, true, true, false]);

        let caught_up = ok_json(
            app.get(
                &t,
                &format!("/v1/people?cursor={}", s(&resumed, "next_cursor")),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(caught_up["data"], json!([]));
        assert_eq!(caught_up["has_more"], false);
        assert!(
            caught_up["next_cursor"].is_string(),
            "an empty sync page still returns a cursor"
        );
    }
}

#[tokio::test]
async fn an_empty_first_sync_page_returns_a_cursor_that_later_sees_new_rows() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let empty = ok_json(app.get(&t, "/v1/accounts?sort=updated_at").await, 200).await;
        assert_eq!(empty["data"], json!([]));
        let cursor = s(&empty, "next_cursor").to_owned();
        assert!(!cursor.is_empty());
        let account = app.create_account(&t, "Globex").await;
        let later = ok_json(
            app.get(&t, &format!("/v1/accounts?sort=updated_at&cursor={cursor}"))
                .await,
            200,
        )
        .await;
        assert_eq!(ids(&later), [s(&account, "id")]);
    }
}

#[tokio::test]
async fn a_sync_holds_back_rows_changed_inside_the_safety_window() {
    for backend in backends() {
        let app = spawn_app_with(&backend, |s| {
            s.sync_safety_window = Duration::from_secs(3600)
        })
        .await;
        let t = app.tenant("acme").await;
        app.create_person(&t, "Fresh", None).await;
        let page = ok_json(app.get(&t, "/v1/people?sort=updated_at").await, 200).await;
        assert_eq!(
            page["data"],
            json!([]),
            "a row younger than the window is not served yet"
        );
        assert_eq!(page["has_more"], false);
        assert!(page["next_cursor"].is_string());
        // The default (id) order is not held back.
        assert_eq!(
            ids(&ok_json(app.get(&t, "/v1/people").await, 200).await).len(),
            1
        );
    }
}

#[tokio::test]
async fn a_cursor_replayed_with_other_filters_or_tampered_with_is_400() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        for i in 0..3 {
            app.create_person(&t, &format!("P{i}"), None).await;
        }
        let page = ok_json(app.get(&t, "/v1/people?limit=1&stage=lead").await, 200).await;
        let cursor = s(&page, "next_cursor").to_owned();
        ok_json(
            app.get(
                &t,
                &format!("/v1/people?limit=1&stage=lead&cursor={cursor}"),
            )
            .await,
            200,
        )
        .await;

        let p = problem(
            app.get(
                &t,
                &format!("/v1/people?limit=1&stage=customer&cursor={cursor}"),
            )
            .await,
            400,
            "invalid-cursor",
        )
        .await;
        assert_eq!(error_fields(&p), ["cursor"]);
        problem(
            app.get(&t, &format!("/v1/accounts?cursor={cursor}")).await,
            400,
            "invalid-cursor",
        )
        .await;
        problem(
            app.get(
                &t,
                &format!("/v1/people?limit=1&stage=lead&sort=updated_at&cursor={cursor}"),
            )
            .await,
            400,
            "invalid-parameter",
        )
        .await;

        let (payload, tag) = cursor.split_once('.').expect("payload.tag");
        let mut forged = payload.to_owned().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = format!("{}.{tag}", String::from_utf8(forged).unwrap_or_default());
        problem(
            app.get(
                &t,
                &format!("/v1/people?limit=1&stage=lead&cursor={forged}"),
            )
            .await,
            400,
            "invalid-cursor",
        )
        .await;
        problem(
            app.get(&t, "/v1/people?cursor=garbage").await,
            400,
            "invalid-cursor",
        )
        .await;

        // Another tenant cannot continue this tenant's walk either.
        let other = app.tenant("other").await;
        problem(
            app.get(
                &other,
                &format!("/v1/people?limit=1&stage=lead&cursor={cursor}"),
            )
            .await,
            400,
            "invalid-cursor",
        )
        .await;
    }
}

#[tokio::test]
async fn offset_pages_walk_by_id_and_link_to_the_next_page() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let mut all = Vec::new();
        for i in 0..5 {
            all.push(s(&app.create_account(&t, &format!("A{i}")).await, "id").to_owned());
        }
        let pages = walk_links(&app, &t, "/v1/accounts?page=1&limit=2").await;
        assert_eq!(pages.len(), 3);
        assert_eq!(pages.iter().flat_map(ids).collect::<Vec<_>>(), all);
        assert!(pages.iter().all(|p| p["next_cursor"].is_null()));

        problem(
            app.get(&t, "/v1/accounts?page=0").await,
            400,
            "invalid-parameter",
        )
        .await;
        problem(
            app.get(&t, "/v1/accounts?page=2&cursor=x").await,
            400,
            "invalid-parameter",
        )
        .await;
        problem(
            app.get(&t, "/v1/accounts?page=2&sort=updated_at").await,
            400,
            "invalid-parameter",
        )
        .await;
        let deep = problem(
            app.get(&t, "/v1/accounts?page=100000&limit=200").await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(error_fields(&deep), ["page"]);
    }
}

#[tokio::test]
async fn the_link_header_walks_a_cursor_list_with_its_filters() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let mut expected = HashSet::new();
        for i in 0..7 {
            let p = app.create_person(&t, &format!("P{i}"), None).await;
            if i % 2 == 0 {
                app.patch(
                    &t,
                    &format!("/v1/people/{}", s(&p, "id")),
                    &json!({"stage": "customer"}),
                )
                .await;
                expected.insert(s(&p, "id").to_owned());
            }
        }
        let pages = walk_links(&app, &t, "/v1/people?stage=customer&limit=1").await;
        assert_eq!(pages.len(), 4);
        let seen: HashSet<String> = pages.iter().flat_map(ids).collect();
        assert_eq!(seen, expected);
        problem(
            app.get(&t, "/v1/people?limit=0").await,
            400,
            "invalid-parameter",
        )
        .await;
        problem(
            app.get(&t, "/v1/people?limit=201").await,
            400,
            "invalid-parameter",
        )
        .await;
        problem(
            app.get(&t, "/v1/people?sort=id&updated_after=2020-01-01T00:00:00Z")
                .await,
            400,
            "invalid-parameter",
        )
        .await;
        problem(
            app.get(&t, "/v1/people?updated_after=yesterday").await,
            400,
            "invalid-parameter",
        )
        .await;
        let default = ok_json(app.get(&t, "/v1/people").await, 200).await;
        assert_eq!(ids(&default).len(), 7, "the default limit is 50");
    }
}
