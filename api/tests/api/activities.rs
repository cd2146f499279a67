//! `/v1/activities` and the activity feed.

use serde_json::{Value, json};

use crate::support::{backends, error_fields, ok_json, problem, s, spawn_app};

#[tokio::test]
async fn an_activity_can_be_logged_read_updated_and_deleted() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let person = app.create_person(&t, "Ada", None).await;
        let body = json!({"person_id": s(&person, "id"), "kind": "meeting", "subject": "Kickoff",
                          "body": "Agenda:\n- pilot", "occurred_at": "2026-03-01T10:00:00Z"});
        let created = ok_json(app.post(&t, "/v1/activities", &body).await, 201).await;
        assert_eq!(s(&created, "kind"), "meeting");
        assert_eq!(
            s(&created, "user_id"),
            t.admin_id.to_string(),
            "defaults to the calling user"
        );
        assert!(s(&created, "occurred_at").starts_with("2026-03-01T10:00:00"));
        let path = format!("/v1/activities/{}", s(&created, "id"));
        assert_eq!(ok_json(app.get(&t, &path).await, 200).await, created);

        let updated = ok_json(
            app.patch(
                &t,
                &path,
                &json!({"subject": "Kickoff (moved)", "body": null}),
            )
            .await,
            200,
        )
        .await;
        assert_eq!(
            (s(&updated, "subject"), &updated["body"]),
            ("Kickoff (moved)", &Value::Null)
        );

        assert_eq!(app.delete(&t, &path).await.status().as_u16(), 204);
        problem(app.get(&t, &path).await, 404, "not-found").await;
    }
}

#[tokio::test]
async fn the_feed_lists_live_activities_newest_first_with_their_person() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let ada = app.create_person(&t, "Ada", None).await;
        let grace = app.create_person(&t, "Grace", None).await;
        for (i, person) in [&ada, &grace, &ada, &grace, &ada].iter().enumerate() {
            let body = json!({"person_id": s(person, "id"), "kind": "note", "subject": format!("note {i}"),
                              "occurred_at": format!("2026-01-0{}T12:00:00Z", i + 1)});
            ok_json(app.post(&t, "/v1/activities", &body).await, 201).await;
        }
        // Deleting a person hides their activities from the feed.
        app.delete(&t, &format!("/v1/people/{}", s(&grace, "id")))
            .await;

        let mut seen = Vec::new();
        let mut path = "/v1/activities/feed?limit=2".to_owned();
        loop {
            let resp = app.get(&t, &path).await;
            let link = resp
                .headers()
                .get("link")
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            let page = ok_json(resp, 200).await;
            for item in page["data"].as_array().into_iter().flatten() {
                assert_eq!(s(&item["person"], "first_name"), "Ada");
                seen.push(s(&item["activity"], "subject").to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(cursor) => {
                    assert!(link.is_some_and(|l| l.contains("rel=\"next\"")));
                    path = format!("/v1/activities/feed?limit=2&cursor={cursor}");
                }
                None => break,
            }
        }
        assert_eq!(seen, ["note 4", "note 2", "note 0"]);
    }
}

#[tokio::test]
async fn activities_can_be_filtered_by_person_and_kind() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let ada = app.create_person(&t, "Ada", None).await;
        let grace = app.create_person(&t, "Grace", None).await;
        app.create_activity(&t, s(&ada, "id"), "call ada").await;
        app.create_activity(&t, s(&grace, "id"), "call grace").await;
        let body = json!({"person_id": s(&ada, "id"), "kind": "email", "subject": "mail ada"});
        ok_json(app.post(&t, "/v1/activities", &body).await, 201).await;

        let subjects = |v: Value| -> Vec<String> {
            v["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| s(a, "subject").to_owned())
                .collect()
        };
        let by_person = ok_json(
            app.get(&t, &format!("/v1/activities?person_id={}", s(&ada, "id")))
                .await,
            200,
        )
        .await;
        assert_eq!(subjects(by_person), ["call ada", "mail ada"]);
        assert_eq!(
            subjects(ok_json(app.get(&t, "/v1/activities?kind=email").await, 200).await),
            ["mail ada"]
        );
    }
}

#[tokio::test]
async fn invalid_activities_are_rejected_with_field_paths() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let a = app.tenant("a").await;
        let b = app.tenant("b").await;
        let person = app.create_person(&a, "Ada", None).await;

        let p = problem(
            app.post(
                &a,
                "/v1/activities",
                &json!({"person_id": s(&person, "id"), "kind": "fax", "subject": "x"}),
            )
            .await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(error_fields(&p), ["kind"]);

        let p = problem(
            app.post(
                &a,
                "/v1/activities",
                &json!({"person_id": s(&person, "id"), "kind": "call", "subject": "",
                                                   "occurred_at": "1900-01-01T00:00:00Z"}),
            )
            .await,
            422,
            "validation-failed",
        )
        .await;
        let mut fields = error_fields(&p);
        fields.sort();
        assert_eq!(fields, ["occurred_at", "subject"]);

        let p = problem(
            app.post(
                &b,
                "/v1/activities",
                &json!({"person_id": s(&person, "id"), "kind": "call", "subject": "x"}),
            )
            .await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(
            error_fields(&p),
            ["person_id"],
            "another tenant's person is not found"
        );
    }
}
