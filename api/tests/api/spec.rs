//! The OpenAPI document: committed copy in sync, conventions held, docs page wired.

use reqwest::Method;
use serde_json::Value;

use crate::support::{backends, ok_json, s, spawn_app};

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");

/// Printing the spec needs no server, database or state: the API structs hold none.
#[test]
fn the_committed_spec_matches_the_code() {
    let generated = api::openapi::spec_text();
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    if generated != committed {
        let line = generated
            .lines()
            .zip(committed.lines())
            .position(|(g, c)| g != c)
            .map_or(0, |i| i + 1);
        panic!(
            "openapi/openapi.json is out of date (first difference at line {line}).\n\
             Regenerate it from the workspace root with:\n\n    cargo run -- openapi > openapi/openapi.json\n"
        );
    }
}

#[tokio::test]
async fn the_served_spec_is_the_committed_one_and_the_docs_page_loads_it() {
    let backend = backends().remove(0);
    let app = spawn_app(&backend).await;
    let resp = app
        .request(Method::GET, "/openapi.json")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.headers()["content-type"], "application/json");
    let served = resp.text().await.unwrap_or_default();
    assert_eq!(served, api::openapi::spec_text());

    let docs = app
        .request(Method::GET, "/docs")
        .send()
        .await
        .expect("sent");
    assert!(
        docs.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .starts_with("text/html")
    );
    let etag = docs.headers()["etag"].clone();
    assert!(
        docs.headers()["cache-control"]
            .to_str()
            .unwrap_or_default()
            .contains("max-age="),
    );
    let vary: Vec<&str> = docs
        .headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(vary.contains(&"Accept-Encoding"), "{vary:?}");
    let html = docs.text().await.unwrap_or_default();
    assert!(html.contains(r#"<script id="api-reference" data-url="/openapi.json" "#));
    assert!(html.contains(r#""preferredSecurityScheme":"token""#));
    assert!(
        html.contains("<title>Tenantry API</title>"),
        "the tab's title"
    );
    assert!(
        !html.contains("multi-tenant sales-engagement API"),
        "the docs page must not embed a copy of the spec"
    );
    // Cached: the same ETag again is a 304 without a body; compressed when asked.
    for path in ["/docs", "/openapi.json"] {
        let first = app.request(Method::GET, path).send().await.expect("sent");
        let etag = first.headers()["etag"].clone();
        let again = app
            .request(Method::GET, path)
            .header("if-none-match", etag)
            .send()
            .await
            .expect("sent");
        assert_eq!(again.status().as_u16(), 304, "{path}");
        assert!(again.bytes().await.unwrap_or_default().is_empty(), "{path}");
    }
    let stale = app
        .request(Method::GET, "/docs")
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .expect("sent");
    assert_eq!(stale.status().as_u16(), 200);
    assert_eq!(stale.headers()["etag"], etag);
    let gzipped = app
        .request(Method::GET, "/docs")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("sent");
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
}

fn spec() -> Value {
    serde_json::from_str(&std::fs::read_to_string(COMMITTED).unwrap_or_default())
        .unwrap_or(Value::Null)
}

#[test]
fn operation_ids_are_verb_resource_with_one_tag_a_summary_and_a_scope() {
    let spec = spec();
    let verbs = ["create", "get", "list", "update", "delete", "revoke"];
    let mut seen = 0;
    for (path, item) in spec["paths"].as_object().into_iter().flatten() {
        assert!(path.starts_with("/v1/"), "{path}");
        for (method, op) in item.as_object().into_iter().flatten() {
            let id = s(op, "operationId");
            let verb = id.split('_').next().unwrap_or_default();
            assert!(
                verbs.contains(&verb) && id.contains('_'),
                "{method} {path}: operationId `{id}`"
            );
            assert_eq!(
                op["tags"].as_array().map(Vec::len),
                Some(1),
                "{id}: one tag"
            );
            assert!(!s(op, "summary").is_empty(), "{id}: summary");
            // A token is what a client pastes (the HTTP bearer scheme, first, for docs
            // tools); the oauth2 `bearer` alternative beside it states the one scope.
            assert_eq!(op["security"][0], serde_json::json!({"token": []}), "{id}");
            assert_eq!(
                op["security"][1]["bearer"].as_array().map(Vec::len),
                Some(1),
                "{id}: one scope"
            );
            for status in ["400", "401", "403"] {
                assert_eq!(
                    op["responses"][status]["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{id}: {status} is a problem"
                );
            }
            seen += 1;
        }
    }
    assert!(seen >= 19);
}

#[test]
fn optional_response_fields_are_nullable_and_always_present() {
    // The one Option convention: every property not in `required` is `nullable` (and
    // the server always sends it, as `null` when empty). Request bodies (`*Create`,
    // `*Update`) may omit fields instead, and so may the representations `fields` and
    // `expand` shape (`*Partial`: see the next test).
    let spec = spec();
    for (name, schema) in spec["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if name.ends_with("Create") || name.ends_with("Update") || name.ends_with("Partial") {
            continue;
        }
        let required: Vec<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for (prop, def) in schema["properties"].as_object().into_iter().flatten() {
            if !required.contains(&prop.as_str()) {
                assert_eq!(
                    def["nullable"], true,
                    "{name}.{prop} is optional but not nullable"
                );
            }
        }
    }
}

/// The names a `fields` or `expand` parameter's pattern (`^(?:a|b)(?:,(?:a|b))*$`) allows.
fn pattern_names(parameter: &Value) -> Vec<String> {
    let pattern = s(&parameter["schema"], "pattern");
    let inner = pattern
        .strip_prefix("^(?:")
        .and_then(|p| p.split_once(')'))
        .map(|(names, _)| names)
        .unwrap_or_default();
    let mut names: Vec<String> = inner.split('|').map(str::to_owned).collect();
    names.sort();
    names
}

/// The schema a property points at, through `allOf` or not.
fn target(property: &Value) -> (Value, Value, Value) {
    let reference = property
        .get("$ref")
        .or_else(|| property.pointer("/allOf/0/$ref"))
        .cloned()
        .unwrap_or(Value::Null);
    (
        reference,
        property["type"].clone(),
        property["format"].clone(),
    )
}

/// `fields` and `expand` shape reads into `application/vnd.tenantry.partial+json`, whose
/// schema must not claim a property the answer may lack: it requires only what always
/// comes (`id`, `version`), offers every property of the full schema with the same type
/// (nullable where the full one is), plus the embedded resources; and the `fields`
/// parameter names exactly the full schema's properties. The full `application/json`
/// representation keeps its schema.
#[test]
fn shaped_reads_declare_a_partial_schema_that_requires_only_what_always_comes() {
    let spec = spec();
    let schemas = &spec["components"]["schemas"];
    let mut operations = std::collections::BTreeMap::new();
    for item in spec["paths"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, i)| i)
    {
        for op in item.as_object().into_iter().flatten().map(|(_, o)| o) {
            operations.insert(s(op, "operationId").to_owned(), op.clone());
        }
    }
    for (full, expansions, reads) in [
        ("Person", ["account"], ["get_person", "list_people"]),
        ("Activity", ["person"], ["get_activity", "list_activities"]),
    ] {
        let partial = format!("{full}Partial");
        let (full_schema, partial_schema) = (&schemas[full], &schemas[&partial]);
        assert_eq!(
            partial_schema["required"],
            serde_json::json!(["id", "version"]),
            "{partial}"
        );
        let mut full_props: Vec<String> = Vec::new();
        for (prop, def) in full_schema["properties"].as_object().into_iter().flatten() {
            let shaped = &partial_schema["properties"][prop];
            assert_eq!(target(shaped), target(def), "{partial}.{prop}");
            assert_eq!(shaped["nullable"], def["nullable"], "{partial}.{prop}");
            full_props.push(prop.clone());
        }
        let mut partial_props: Vec<&String> = partial_schema["properties"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
            .collect();
        partial_props.retain(|p| !full_props.contains(p));
        assert_eq!(
            partial_props, expansions,
            "{partial}: only the expansions are new"
        );
        for expansion in expansions {
            assert_eq!(
                partial_schema["properties"][expansion]["nullable"], true,
                "{partial}.{expansion}"
            );
        }
        full_props.sort();
        for id in reads {
            let op = &operations[id];
            let parameter = |name: &str| {
                op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|p| p["name"] == name && p["in"] == "query")
                    .cloned()
                    .unwrap_or_else(|| panic!("{id} has no `{name}`"))
            };
            assert_eq!(pattern_names(&parameter("fields")), full_props, "{id}");
            assert_eq!(pattern_names(&parameter("expand")), expansions, "{id}");
            let content = &op["responses"]["200"]["content"];
            let (full_ref, partial_ref) = if id.starts_with("list_") {
                (format!("{full}List"), format!("{partial}List"))
            } else {
                (full.to_owned(), partial.clone())
            };
            assert_eq!(
                content["application/json"]["schema"]["$ref"],
                format!("#/components/schemas/{full_ref}"),
                "{id}"
            );
            assert_eq!(
                content["application/vnd.tenantry.partial+json"]["schema"]["$ref"],
                format!("#/components/schemas/{partial_ref}"),
                "{id}"
            );
        }
    }
}

#[test]
fn the_spec_has_a_license_examples_and_the_problem_schema() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.0.0");
    assert_eq!(spec["info"]["license"]["name"], "MIT");
    let schemas = &spec["components"]["schemas"];
    for name in [
        "Account",
        "AccountCreate",
        "Person",
        "PersonCreate",
        "Activity",
        "ActivityCreate",
        "ApiKey",
        "Problem",
    ] {
        assert!(
            schemas[name]["example"].is_object(),
            "{name} has an example"
        );
    }
    assert_eq!(
        schemas["Problem"]["required"],
        serde_json::json!(["type", "title", "status", "errors", "violated-policies"]),
        "the RFC 9457 members plus errors and the rate-limit draft's violated-policies"
    );
}

#[tokio::test]
async fn response_bodies_match_the_documented_example_shapes() {
    // A light snapshot: a live resource has exactly the keys of its schema's example.
    let backend = backends().remove(0);
    let app = spawn_app(&backend).await;
    let t = app.tenant("acme").await;
    let spec = spec();
    let account = app.create_account(&t, "Globex").await;
    let person = app.create_person(&t, "Ada", Some(s(&account, "id"))).await;
    let activity = app.create_activity(&t, s(&person, "id"), "Call").await;
    for (name, live) in [
        ("Account", account),
        ("Person", person),
        ("Activity", activity),
    ] {
        let keys = |v: &Value| {
            let mut k: Vec<String> = v
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect();
            k.sort();
            k
        };
        assert_eq!(
            keys(&live),
            keys(&spec["components"]["schemas"][name]["example"]),
            "{name}"
        );
    }
    let list = ok_json(app.get(&t, "/v1/people").await, 200).await;
    let mut keys: Vec<&String> = list
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    keys.sort();
    assert_eq!(keys, ["data", "has_more", "next_cursor"]);
}

/// Every schema, however deeply nested (property, `allOf` member, array items).
fn schemas_in<'a>(value: &'a Value, out: &mut Vec<(String, &'a Value)>, path: &str) {
    match value {
        Value::Object(map) => {
            if map.contains_key("nullable") {
                out.push((path.to_owned(), value));
            }
            for (key, child) in map {
                schemas_in(child, out, &format!("{path}/{key}"));
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                schemas_in(child, out, &format!("{path}/{i}"));
            }
        }
        _ => {}
    }
}

/// OpenAPI 3.0 ignores `nullable` without a `type` beside it (and Redocly's recommended
/// rules reject it), so generated clients would not accept the `null` the API sends.
#[test]
fn every_nullable_schema_has_a_type_beside_it() {
    let spec = spec();
    let mut nullable = Vec::new();
    schemas_in(&spec, &mut nullable, "");
    assert!(!nullable.is_empty());
    let untyped: Vec<&str> = nullable
        .iter()
        .filter(|(_, schema)| schema.get("type").is_none())
        .map(|(path, _)| path.as_str())
        .collect();
    assert!(untyped.is_empty(), "nullable without type at {untyped:?}");
}
