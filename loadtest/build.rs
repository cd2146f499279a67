//! Generates the Tenantry client from the committed spec (`../openapi/openapi.json`).
//!
//! progenitor types only `application/json` responses, so the problem details the API
//! returns as `application/problem+json` would come back untyped. The spec is therefore
//! copied with every `application/problem+json` renamed `application/json`: the
//! generated client does not check the response Content-Type, so errors decode into
//! `types::Problem` (the same response, typed). The copy is written next to
//! the generated code (`$OUT_DIR/openapi-client.json`) for inspection.
//!
//! Any drift between the spec and the code that uses the client (a renamed field, a
//! removed parameter) breaks this crate's build; drift between the spec and the server
//! shows up at run time as `invalid_payload` errors.

use std::path::PathBuf;

fn main() {
    let spec_path = PathBuf::from("../openapi/openapi.json");
    println!("cargo:rerun-if-changed={}", spec_path.display());
    println!("cargo:rerun-if-changed=build.rs");

    let text = std::fs::read_to_string(&spec_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", spec_path.display()));
    let mut spec: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing the spec: {e}"));
    let renamed = rename_problem_media_type(&mut spec);
    assert!(
        renamed > 0,
        "no application/problem+json response in the spec: has the error convention changed?"
    );

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".to_owned()));
    let copy = serde_json::to_string_pretty(&spec).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(out_dir.join("openapi-client.json"), copy)
        .unwrap_or_else(|e| panic!("writing the spec copy: {e}"));

    let spec: openapiv3::OpenAPI =
        serde_json::from_value(spec).unwrap_or_else(|e| panic!("not OpenAPI 3.0: {e}"));
    let mut settings = progenitor::GenerationSettings::default();
    settings.with_interface(progenitor::InterfaceStyle::Builder);
    let mut generator = progenitor::Generator::new(&settings);
    let tokens = generator
        .generate_tokens(&spec)
        .unwrap_or_else(|e| panic!("progenitor: {e}"));
    std::fs::write(out_dir.join("codegen.rs"), tokens.to_string())
        .unwrap_or_else(|e| panic!("writing the client: {e}"));
}

/// Renames every `application/problem+json` media-type key under `responses` to
/// `application/json`; returns how many were renamed.
fn rename_problem_media_type(value: &mut serde_json::Value) -> usize {
    let mut count = 0;
    match value {
        serde_json::Value::Object(map) => {
            if let Some(problem) = map.remove("application/problem+json") {
                // An operation with both would be ambiguous for progenitor; keep the JSON one.
                map.entry("application/json").or_insert(problem);
                count += 1;
            }
            for child in map.values_mut() {
                count += rename_problem_media_type(child);
            }
        }
        serde_json::Value::Array(items) => {
            for child in items {
                count += rename_problem_media_type(child);
            }
        }
        _ => {}
    }
    count
}
