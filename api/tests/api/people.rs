//! `/v1/people`: happy paths, the joined read with account names, bad inputs.

use serde_json::{Value, json};

use crate::support::{backends, error_fields, ok_json, problem, s, spawn_app};

fn names(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| s(p, "first_name").to_owned())
        .collect()
}

#[tokio::test]
async fn a_person_can_be_created_read_updated_and_deleted() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let account = app.create_account(&t, "Globex").await;
        let body = json!({
            "account_id": s(&account, "id"), "first_name": "Ada", "last_name": "Lovelace",
            "email": "Ada@Example.com", "phone": "+1 (555) 010-2030", "title": "CTO", "stage": "qualified"
        });
        let created = ok_json(app.post(&t, "/v1/people", &body).await, 201).await;
        assert_eq!(s(&created, "email"), "ada@example.com");
        assert_eq!(s(&created, "phone"), "+15550102030");
        assert_eq!(s(&created, "stage"), "qualified");
        let path = format!("/v1/people/{}", s(&created, "id"));
        assert_eq!(ok_json(app.get(&t, &path).await, 200).await, created);

        let updated = ok_json(
            app.patch(&t, &path, &json!({"stage": "customer", "title": null}))
                .await,
            200,
        )
        .await;
        assert_eq!(
            (s(&updated, "stage"), &updated["title"]),
            ("customer", &Value::Null)
        );

        assert_eq!(app.delete(&t, &path).await.status().as_u16(), 204);
        problem(app.get(&t, &path).await, 404, "not-found").await;
    }
}

#[tokio::test]
async fn people_can_be_listed_with_their_account_names_in_one_request() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let globex = app.create_account(&t, "Globex").await;
        let initech = app.create_account(&t, "Initech").await;
        app.create_person(&t, "Ada", Some(s(&globex, "id"))).await;
        app.create_person(&t, "Grace", Some(s(&initech, "id")))
            .await;
        app.create_person(&t, "Alan", None).await;

        let plain = ok_json(app.get(&t, "/v1/people").await, 200).await;
        assert!(
            plain["data"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|p| p["account_name"].is_null())
        );

        let joined = ok_json(
            app.get(&t, "/v1/people?include_account_name=true").await,
            200,
        )
        .await;
        let pairs: Vec<(String, Value)> = joined["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| (s(p, "first_name").to_owned(), p["account_name"].clone()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("Ada".to_owned(), json!("Globex")),
                ("Grace".to_owned(), json!("Initech")),
                ("Alan".to_owned(), Value::Null)
            ]
        );

        // A deleted account's name is no longer shown.
        app.delete(&t, &format!("/v1/accounts/{}", s(&globex, "id")))
            .await;
        let joined = ok_json(
            app.get(&t, "/v1/people?include_account_name=true&limit=1")
                .await,
            200,
        )
        .await;
        assert_eq!(joined["data"][0]["account_name"], Value::Null);

        problem(
            app.get(&t, "/v1/people?include_account_name=true&page=1")
                .await,
            400,
            "invalid-parameter",
        )
        .await;
    }
}

#[tokio::test]
async fn people_can_be_filtered_by_account_stage_and_email() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let globex = app.create_account(&t, "Globex").await;
        app.create_person(&t, "Ada", Some(s(&globex, "id"))).await;
        let grace = app.create_person(&t, "Grace", None).await;
        app.patch(
            &t,
            &format!("/v1/people/{}", s(&grace, "id")),
            &json!({"stage": "customer", "email": "grace@navy.mil"}),
        )
        .await;

        let by_account = ok_json(
            app.get(&t, &format!("/v1/people?account_id={}", s(&globex, "id")))
                .await,
            200,
        )
        .await;
        assert_eq!(names(&by_account), ["Ada"]);
        assert_eq!(
            names(&ok_json(app.get(&t, "/v1/people?stage=customer").await, 200).await),
            ["Grace"]
        );
        assert_eq!(
            names(&ok_json(app.get(&t, "/v1/people?email=GRACE@navy.mil").await, 200).await),
            ["Grace"]
        );
        let p = problem(
            app.get(&t, "/v1/people?stage=champion").await,
            400,
            "invalid-parameter",
        )
        .await;
        assert_eq!(error_fields(&p), ["stage"]);
    }
}

#[tokio::test]
async fn a_person_at_another_tenants_account_is_refused_as_not_found() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let a = app.tenant("a").await;
        let b = app.tenant("b").await;
        let their_account = app.create_account(&a, "A's account").await;
        let body =
            json!({"first_name": "Eve", "last_name": "X", "account_id": s(&their_account, "id")});
        let p = problem(
            app.post(&b, "/v1/people", &body).await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(
            (error_fields(&p), s(&p["errors"][0], "code")),
            (vec!["account_id".to_owned()], "not_found")
        );
    }
}

#[tokio::test]
async fn invalid_people_are_rejected_with_field_paths() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let t = app.tenant("acme").await;
        let body = json!({"first_name": "Ada", "last_name": "", "email": "nope", "phone": "12"});
        let p = problem(
            app.post(&t, "/v1/people", &body).await,
            422,
            "validation-failed",
        )
        .await;
        let mut fields = error_fields(&p);
        fields.sort();
        assert_eq!(fields, ["email", "last_name", "phone"]);

        let p = problem(
            app.post(
                &t,
                "/v1/people",
                &json!({"first_name": "A", "last_name": "B", "stage": "champion"}),
            )
            .await,
            422,
            "validation-failed",
        )
        .await;
        assert_eq!(error_fields(&p), ["stage"]);
    }
}
