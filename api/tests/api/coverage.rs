//! The authorization coverage test: every operation of the served spec must have a case
//! here. For each, it checks that
//! - without credentials it is 401;
//! - with a credential lacking the scope the spec declares it is 403 (so the declared
//!   scope is the enforced one);
//! - tenant B cannot reach tenant A's resources: 404 by id, absent from lists, a
//!   reference to them refused as not found;
//! - tenant A itself succeeds (so B's 404 is not vacuous), charged the cost the spec
//!   publishes for the operation (`x-rate-limit-cost` = `X-RateLimit-Cost`), which proves
//!   each handler charges its own declared price.
//!
//! A new operation without a case makes this test fail, naming it.

use api::auth::Scope;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, TestTenant, backends, error_fields, ok_json, problem, s, spawn_app};

/// Tenant A's resources, made fresh for each operation.
struct Fixture {
    account: String,
    person: String,
    activity: String,
    api_key: String,
}

impl Fixture {
    async fn new(app: &TestApp, a: &TestTenant) -> Self {
        let account = s(&app.create_account(a, "A's account").await, "id").to_owned();
        let person = s(
            &app.create_person(a, "A's person", Some(&account)).await,
            "id",
        )
        .to_owned();
        let activity = s(&app.create_activity(a, &person, "A's call").await, "id").to_owned();
        let key = ok_json(
            app.post(a, "/v1/api_keys", &json!({"name": "A's key", "scopes": []}))
                .await,
            201,
        )
        .await;
        Self {
            account,
            person,
            activity,
            api_key: s(&key["api_key"], "id").to_owned(),
        }
    }
}

/// What tenant B gets.
enum Expect {
    /// 404 not-found.
    NotFound,
    /// 200, and A's resource with this id is not among the items.
    Without(String),
    /// 422 with a `not_found` error on this body field (a reference to A's resource).
    RefusedReference(&'static str),
    /// 201: B creates its own resource (nothing of A's is named).
    OwnCreate,
}

struct Case {
    path: String,
    body: Option<Value>,
    expect: Expect,
}

fn case(operation: &str, f: &Fixture) -> Option<Case> {
    let c = |path: String, body: Option<Value>, expect: Expect| Some(Case { path, body, expect });
    match operation {
        "create_account" => c(
            "/v1/accounts".into(),
            Some(json!({"name": "B's"})),
            Expect::OwnCreate,
        ),
        "get_account" => c(
            format!("/v1/accounts/{}", f.account),
            None,
            Expect::NotFound,
        ),
        "list_accounts" => c(
            "/v1/accounts".into(),
            None,
            Expect::Without(f.account.clone()),
        ),
        "update_account" => c(
            format!("/v1/accounts/{}", f.account),
            Some(json!({"name": "x"})),
            Expect::NotFound,
        ),
        "delete_account" => c(
            format!("/v1/accounts/{}", f.account),
            None,
            Expect::NotFound,
        ),
        "create_person" => c(
            "/v1/people".into(),
            Some(json!({"first_name": "B", "last_name": "B", "account_id": f.account})),
            Expect::RefusedReference("account_id"),
        ),
        // The reads that join (`expand`) are the ones to prove: the plain ones are the same
        // queries without the join.
        "get_person" => c(
            format!("/v1/people/{}?expand=account", f.person),
            None,
            Expect::NotFound,
        ),
        "list_people" => c(
            "/v1/people?include_account_name=true&expand=account&fields=first_name".into(),
            None,
            Expect::Without(f.person.clone()),
        ),
        "update_person" => c(
            format!("/v1/people/{}", f.person),
            Some(json!({"title": "x"})),
            Expect::NotFound,
        ),
        "delete_person" => c(format!("/v1/people/{}", f.person), None, Expect::NotFound),
        "create_activity" => c(
            "/v1/activities".into(),
            Some(json!({"person_id": f.person, "kind": "call", "subject": "x"})),
            Expect::RefusedReference("person_id"),
        ),
        "get_activity" => c(
            format!("/v1/activities/{}?expand=person&fields=subject", f.activity),
            None,
            Expect::NotFound,
        ),
        "list_activities" => c(
            "/v1/activities?expand=person".into(),
            None,
            Expect::Without(f.activity.clone()),
        ),
        "list_activity_feed" => c(
            "/v1/activities/feed".into(),
            None,
            Expect::Without(f.activity.clone()),
        ),
        "update_activity" => c(
            format!("/v1/activities/{}", f.activity),
            Some(json!({"subject": "x"})),
            Expect::NotFound,
        ),
        "delete_activity" => c(
            format!("/v1/activities/{}", f.activity),
            None,
            Expect::NotFound,
        ),
        "create_api_key" => c(
            "/v1/api_keys".into(),
            Some(json!({"name": "B's", "scopes": []})),
            Expect::OwnCreate,
        ),
        "list_api_keys" => c(
            "/v1/api_keys".into(),
            None,
            Expect::Without(f.api_key.clone()),
        ),
        "revoke_api_key" => c(
            format!("/v1/api_keys/{}", f.api_key),
            None,
            Expect::NotFound,
        ),
        _ => None,
    }
}

/// Every id in a list response (feed items carry theirs under `activity`).
fn listed_ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| s(item, "id").to_owned() + s(&item["activity"], "id"))
        .collect()
}

struct Operation {
    id: String,
    method: Method,
    scope: Scope,
    /// `x-rate-limit-cost`: what a call with default parameters costs.
    cost: u64,
}

fn operations(spec: &Value) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let id = s(op, "operationId").to_owned();
            let scopes: Vec<&str> = op["security"][1]["bearer"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            assert_eq!(
                scopes.len(),
                1,
                "{id} ({path}) must declare exactly one scope"
            );
            let scope = Scope::parse(scopes[0])
                .unwrap_or_else(|| panic!("{id}: unknown scope {}", scopes[0]));
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let cost = op["x-rate-limit-cost"]
                .as_u64()
                .unwrap_or_else(|| panic!("{id} publishes no x-rate-limit-cost"));
            ops.push(Operation {
                id,
                method,
                scope,
                cost,
            });
        }
    }
    ops
}

#[tokio::test]
async fn every_operation_is_401_without_credentials_403_without_its_scope_and_404_across_tenants() {
    for backend in backends() {
        let app = spawn_app(&backend).await;
        let spec = ok_json(
            app.request(Method::GET, "/openapi.json")
                .send()
                .await
                .expect("sent"),
            200,
        )
        .await;
        let a = app.tenant("a").await;
        let b = app.tenant("b").await;
        let ops = operations(&spec);
        assert!(ops.len() >= 19, "the spec lists every operation");
        let mut missing = Vec::new();
        for op in &ops {
            let f = Fixture::new(&app, &a).await;
            let Some(case) = case(&op.id, &f) else {
                missing.push(op.id.clone());
                continue;
            };
            let send = |token: Option<&str>| {
                let mut req = app.request(op.method.clone(), &case.path);
                if let Some(token) = token {
                    req = req.bearer_auth(token);
                }
                if let Some(body) = &case.body {
                    req = req.json(body);
                }
                req.send()
            };

            problem(send(None).await.expect("sent"), 401, "unauthenticated").await;

            let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != op.scope).collect();
            let lacking = app.token(&a, &others);
            let p = problem(
                send(Some(&lacking)).await.expect("sent"),
                403,
                "insufficient-scope",
            )
            .await;
            assert!(
                s(&p, "detail").contains(op.scope.as_str()),
                "{}: {p}",
                op.id
            );

            let as_b = send(Some(&b.token)).await.expect("sent");
            match &case.expect {
                Expect::NotFound => {
                    problem(as_b, 404, "not-found").await;
                }
                Expect::Without(id) => {
                    let body = ok_json(as_b, 200).await;
                    assert!(
                        !listed_ids(&body).contains(id),
                        "{}: B sees A's {id}",
                        op.id
                    );
                }
                Expect::RefusedReference(field) => {
                    let p = problem(as_b, 422, "validation-failed").await;
                    assert_eq!(error_fields(&p), [*field], "{}", op.id);
                    assert_eq!(p["errors"][0]["code"], "not_found", "{}", op.id);
                }
                Expect::OwnCreate => {
                    ok_json(as_b, 201).await;
                }
            }

            let as_a = send(Some(&a.token)).await.expect("sent");
            let status = as_a.status().as_u16();
            let charged = as_a
                .headers()
                .get("x-ratelimit-cost")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            assert_eq!(
                charged,
                Some(op.cost),
                "{}: charged differently from its published x-rate-limit-cost",
                op.id
            );
            assert!(
                (200..300).contains(&status),
                "{}: A itself got {status}: {}",
                op.id,
                as_a.text().await.unwrap_or_default()
            );
            if let Expect::Without(id) = &case.expect {
                let body: Value = serde_json::from_str(&as_a.text().await.unwrap_or_default())
                    .unwrap_or(Value::Null);
                assert!(
                    listed_ids(&body).contains(id),
                    "{}: A does not see its own {id}",
                    op.id
                );
            }
        }
        assert!(
            missing.is_empty(),
            "operations without an authorization case in tests/api/coverage.rs: {missing:?}"
        );
    }
}
