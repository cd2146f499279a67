//! HTTP conventions shared by every operation: the JSON body extractor (field-level
//! errors), the JSON response body (serialized straight from the DTO), ETags and preconditions, `Link` headers, and idempotent creates.

use std::time::Duration;

use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tenancy::{TenantDb, TenantTxn};

use crate::auth::Principal;
use crate::problem::{FieldProblem, Problem, kind};

/// A JSON request body of type `T`.
///
/// The spec shows `T`'s schema (from its `Object` derive); parsing goes through serde
/// so that every failure names its field: malformed JSON is a 400 `malformed-json`
/// (with line and column), a missing field, a wrong type or an unknown field is a 422
/// `validation-failed` with the field's path. The canonical form of the body is kept
/// for idempotency fingerprints.
#[derive(Debug)]
pub struct JsonBody<T> {
    /// The parsed body.
    pub value: T,
    /// The body with object keys sorted: equal for semantically equal JSON.
    pub canonical: String,
}

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        is_json_media_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = body.take()?.into_vec().await?;
        let _ = request;
        parse_json(&bytes).map_err(Into::into)
    }
}

poem_openapi::impl_apirequest_for_payload!(JsonBody<T>, T: Type + DeserializeOwned);

/// The one media type request bodies are accepted in: `application/json` (any case),
/// with no parameter but an optional `charset=utf-8` (any case, quoted or not).
///
/// Everything else is a 415: other charsets (JSON is UTF-8, RFC 8259, and the body is
/// parsed as such), and `+json` types too — `application/problem+json` or
/// `application/merge-patch+json` say the body means something other than what these
/// operations take, so accepting them would accept a request the client did not mean.
pub fn is_json_media_type(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        && parts.all(|parameter| {
            let Some((name, value)) = parameter.split_once('=') else {
                return false;
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            name.trim().eq_ignore_ascii_case("charset") && value.eq_ignore_ascii_case("utf-8")
        })
}

/// A JSON response body: `T`'s schema in the spec (from its `Object` derive), its bytes
/// written by serde straight from the DTO.
///
/// poem-openapi's `Json` first builds a `serde_json::Value` tree of the whole body (a map
/// per object, a `String` per field) and then serializes the tree; on a 50-item list page
/// that was half of the request's instructions. The DTOs derive `Serialize` to write the
/// same JSON (times as [`crate::timestamp::Timestamp`]); a test per DTO checks that
/// serde's output equals `ToJSON`'s, so the spec and the bytes cannot drift apart.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonOut<T>(pub T);

impl<T: Type> Payload for JsonOut<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + serde::Serialize> poem::IntoResponse for JsonOut<T> {
    fn into_response(self) -> poem::Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => poem::Response::builder()
                .content_type(<Self as Payload>::CONTENT_TYPE)
                .body(body),
            Err(err) => {
                crate::problem::log_internal(&err);
                poem::IntoResponse::into_response(Problem::internal())
            }
        }
    }
}

fn malformed(detail: String) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, kind::MALFORMED_JSON, detail)
}

/// Parses `bytes` as a `T`, with field-level errors.
///
/// # Errors
/// 400 for malformed JSON, 422 for a body of the wrong shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<JsonBody<T>, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(malformed(
            "the request body is empty: send a JSON object".to_owned(),
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| malformed(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(Problem::validation(vec![FieldProblem::new(
            "body",
            "invalid_type",
            "must be a JSON object",
        )]));
    }
    let canonical = canonical_json(&value);
    let value = serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let (field, code) = if let Some(name) = backticked(&inner, "missing field `") {
            (join_path(&path, name), "required")
        } else if let Some(name) = backticked(&inner, "unknown field `") {
            // serde_path_to_error's path already ends at the unknown field.
            (
                if path == "." { name.to_owned() } else { path },
                "unknown_field",
            )
        } else {
            (
                if path == "." { "body".to_owned() } else { path },
                "invalid_type",
            )
        };
        Problem::validation(vec![FieldProblem::new(field, code, inner)])
    })?;
    Ok(JsonBody { value, canonical })
}

fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split('`').next()
}

fn join_path(parent: &str, name: &str) -> String {
    if parent == "." || parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// JSON with object keys sorted recursively.
pub fn canonical_json(value: &Value) -> String {
    fn sort(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sort(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    sort(value).to_string()
}

/// The strong ETag of a row at `version`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

/// Whether `If-None-Match` matches `version` (weak comparison, lists and `*` allowed).
pub fn none_match(header: Option<&str>, version: i64) -> bool {
    none_match_tag(header, &etag(version))
}

/// Whether `If-None-Match` matches the ETag `ours`, strong or weak (weak comparison: the
/// opaque tags are compared without their `W/`; lists and `*` allowed).
pub fn none_match_tag(header: Option<&str>, ours: &str) -> bool {
    let Some(header) = header else { return false };
    let ours = ours.trim_start_matches("W/");
    header
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

/// The version `If-Match` requires, if the header is present.
///
/// # Errors
/// 400 when the header is not one ETag of this API (`"<version>"`); `*` means "any
/// current version" and yields `None`.
pub fn if_match_version(header: Option<&str>) -> Result<Option<i64>, Problem> {
    let Some(header) = header.map(str::trim) else {
        return Ok(None);
    };
    if header == "*" {
        return Ok(None);
    }
    header
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        // Digits only, as ETags are written (`"3"`): not `"+3"`, `"-1"` or `"03"`.
        .filter(|s| {
            !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
                && (s.len() == 1 || !s.starts_with('0'))
        })
        .and_then(|s| s.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(|| {
            Problem::invalid_parameter(
                "If-Match",
                "must be an ETag returned by this API, like \"3\"",
            )
        })
}

/// `<url>; rel="next"`.
pub fn link_next(url: &str) -> String {
    format!("<{url}>; rel=\"next\"")
}

/// Encodes a query string value.
pub fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The header that makes a create safe to retry.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The longest accepted [`IDEMPOTENCY_KEY`], in characters (bytes: they are ASCII).
pub const IDEMPOTENCY_KEY_MAX_LEN: usize = 255;

/// The format of an [`IDEMPOTENCY_KEY`] as the spec declares it (an ECMA-262 pattern):
/// printable ASCII, 0x21 to 0x7E.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[\\x21-\\x7E]+$";

/// Whether `key` is an acceptable Idempotency-Key: 1 to [`IDEMPOTENCY_KEY_MAX_LEN`]
/// printable ASCII characters (0x21 to 0x7E: no space, no control character, no byte
/// outside ASCII). The one rule, checked on the raw header bytes.
pub fn is_valid_idempotency_key(key: &[u8]) -> bool {
    (1..=IDEMPOTENCY_KEY_MAX_LEN).contains(&key.len()) && key.iter().all(u8::is_ascii_graphic)
}

/// The 400 for an Idempotency-Key outside [`is_valid_idempotency_key`], or sent twice.
pub fn invalid_idempotency_key() -> Problem {
    Problem::invalid_parameter(
        IDEMPOTENCY_KEY,
        "must be one header of 1 to 255 printable ASCII characters (0x21 to 0x7E)",
    )
}

/// Checks the raw `Idempotency-Key` header(s) of a request, before anything reads them.
///
/// poem-openapi's header extraction silently drops a value that is not visible ASCII (a
/// UTF-8 `clé-1`), so an operation would see no key at all and create twice; the
/// middleware runs this on every request instead, so the rule holds whatever reads the
/// header later.
///
/// # Errors
/// [`invalid_idempotency_key`] when the header is present but not exactly one valid key.
pub fn check_idempotency_key(headers: &poem::http::HeaderMap) -> Result<(), Problem> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(()),
        (Some(key), None) if is_valid_idempotency_key(key.as_bytes()) => Ok(()),
        _ => Err(invalid_idempotency_key()),
    }
}

/// How long a completed idempotent request is remembered.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The outcome of an idempotent create: the resource, and whether it is a replay.
#[derive(Debug)]
pub struct Idempotent<T> {
    /// The resource (first run or replayed).
    pub value: T,
    /// Whether it was replayed from an earlier request with the same key.
    pub replayed: bool,
}

/// Runs `create` at most once per `Idempotency-Key` (per credential), through
/// [`domain::idempotency::once`]: the claim of the key, the write and the stored response
/// commit in one transaction, and only a successful commit makes a 2xx. A retry with the
/// same key and body gets the stored response; the same key with another body is a 422;
/// a retry while the first is still running waits for it, then replays its response (or
/// runs, if the first failed). Errors are not stored: a fixed request may reuse its key.
/// Without a key, `create` runs in a transaction of its own.
///
/// Only creates (POST) take a key. `PATCH` with `If-Match` and `DELETE` are safe to retry
/// by their own semantics: a replayed `PATCH` names a version that is no longer current
/// and changes nothing (412), and a `DELETE` leaves the row deleted however often it is
/// sent.
///
/// This function only parses the header, fingerprints the operation and the canonical
/// body, and turns the DTO into the stored JSON and back.
///
/// # Errors
/// Those of `create`, and the idempotency problems above.
pub async fn idempotent<T>(
    db: &TenantDb,
    principal: &Principal,
    key: Option<&str>,
    operation: &str,
    canonical_body: &str,
    create: impl AsyncFnOnce(&TenantTxn) -> domain::Result<T>,
) -> Result<Idempotent<T>, Problem>
where
    T: ToJSON + ParseFromJSON,
{
    use domain::idempotency::{Claim, Once, Stored, once};
    if key.is_some_and(|key| !is_valid_idempotency_key(key.as_bytes())) {
        return Err(invalid_idempotency_key());
    }
    // The credential and the fingerprint, only when there is a key to claim.
    let claimant = key.map(|_| {
        let digest = Sha256::digest(format!("{operation}\n{canonical_body}").as_bytes());
        let hash = digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        (principal.credential().id(), hash)
    });
    let claim = key
        .zip(claimant.as_ref())
        .map(|(key, (credential, hash))| Claim {
            credential_id: credential,
            key,
            request_hash: hash,
            ttl: IDEMPOTENCY_TTL,
        });
    let stored = |value: &T| Stored {
        status: 201,
        body: value.to_json().map(|v| v.to_string()).unwrap_or_default(),
    };
    match once(db, claim, create, stored).await {
        Ok(Once::Ran(value)) => Ok(Idempotent {
            value,
            replayed: false,
        }),
        Ok(Once::Replayed(Stored { body, .. })) => {
            let json: Value = serde_json::from_str(&body).map_err(|e| {
                crate::problem::log_internal(&e);
                Problem::internal()
            })?;
            let value = T::parse_from_json(Some(json)).map_err(|e| {
                tracing::error!(
                    error = e.message(),
                    "stored idempotent response does not parse"
                );
                Problem::internal()
            })?;
            Ok(Idempotent {
                value,
                replayed: true,
            })
        }
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields are only deserialized")]
    struct Sample {
        name: String,
        count: u32,
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "fields are only deserialized")]
    struct Nested {
        email: String,
    }

    fn field_of(body: &str) -> (u16, String, String) {
        match parse_json::<Sample>(body.as_bytes()) {
            Ok(_) => (200, String::new(), String::new()),
            Err(p) => {
                let first = p
                    .errors
                    .first()
                    .cloned()
                    .unwrap_or_else(|| FieldProblem::new("", "", ""));
                (p.status, first.field, first.code)
            }
        }
    }

    #[test]
    fn body_errors_name_the_failing_field() {
        assert_eq!(
            field_of(r#"{"count": 1}"#),
            (422, "name".into(), "required".into())
        );
        assert_eq!(
            field_of(r#"{"name": 5, "count": 1}"#),
            (422, "name".into(), "invalid_type".into())
        );
        assert_eq!(
            field_of(r#"{"name": "a", "count": 1, "cuont": 2}"#),
            (422, "cuont".into(), "unknown_field".into())
        );
        assert_eq!(
            field_of(r#"{"name": "a", "count": 1, "nested": {"email": 3}}"#),
            (422, "nested.email".into(), "invalid_type".into())
        );
        assert_eq!(
            field_of(r#"{"name": "a", "count": 1, "nested": {}}"#),
            (422, "nested.email".into(), "required".into())
        );
        assert_eq!(field_of("[1]").0, 422);
    }

    #[test]
    fn malformed_and_empty_bodies_are_400() {
        for body in ["{", "", "   ", "{\"name\": }", "nul"] {
            let err = parse_json::<Sample>(body.as_bytes()).err();
            assert_eq!(
                err.map(|p| (p.status, p.kind)),
                Some((400, kind::MALFORMED_JSON.to_owned())),
                "{body:?}"
            );
        }
    }

    #[test]
    fn canonical_json_ignores_key_order_and_whitespace() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"d": 1, "c": 2}], "x": null}}"#)
                .unwrap_or_default();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,{"c":2,"d":1}]},"b":1}"#)
            .unwrap_or_default();
        assert_eq!(canonical_json(&a), canonical_json(&b));
    }

    #[test]
    fn etags_and_preconditions() {
        assert_eq!(etag(3), "\"3\"");
        assert!(none_match(Some("\"3\""), 3));
        assert!(none_match(Some("W/\"3\""), 3));
        assert!(none_match(Some("\"1\", \"3\""), 3));
        assert!(none_match(Some("*"), 3));
        assert!(!none_match(Some("\"2\""), 3));
        assert!(!none_match(None, 3));
        assert!(none_match_tag(Some("W/\"3-1f-0\""), "W/\"3-1f-0\""));
        assert!(none_match_tag(Some("\"2\", \"3-1f-0\""), "W/\"3-1f-0\""));
        assert!(!none_match_tag(Some("\"3\""), "W/\"3-1f-0\""));
        assert!(!none_match(Some("W/\"3-1f-0\""), 3));
        assert_eq!(if_match_version(Some("\"4\"")).ok(), Some(Some(4)));
        assert_eq!(if_match_version(Some("*")).ok(), Some(None));
        assert_eq!(if_match_version(None).ok(), Some(None));
        assert!(if_match_version(Some("4")).is_err());
        assert!(if_match_version(Some("W/\"4\"")).is_err());
        for odd in ["\"+5\"", "\"-1\"", "\"007\"", "\"\""] {
            assert!(if_match_version(Some(odd)).is_err(), "{odd}");
        }
        assert_eq!(if_match_version(Some("\"0\"")).ok(), Some(Some(0)));
    }

    #[test]
    fn only_application_json_in_utf8_is_a_json_media_type() {
        for ok in [
            "application/json",
            "APPLICATION/Json",
            " application/json ; charset=UTF-8",
            "application/json;charset=\"utf-8\"",
        ] {
            assert!(is_json_media_type(ok), "{ok:?}");
        }
        for bad in [
            "",
            "application/evil+json",
            "application/problem+json",
            "application/json; charset=latin1",
            "application/json; charset=utf-16",
            "application/json; profile=x",
            "application/json;",
            "application/jsonx",
            "text/json",
        ] {
            assert!(!is_json_media_type(bad), "{bad:?}");
        }
    }

    #[test]
    fn an_idempotency_key_is_1_to_255_printable_ascii_characters() {
        for ok in ["!", "key-1", "~".repeat(255).as_str(), "a/b:c=d"] {
            assert!(is_valid_idempotency_key(ok.as_bytes()), "{ok:?}");
        }
        for bad in [
            "",
            "a b",
            "tab\tkey",
            "clé-1",
            "\u{7f}",
            "k".repeat(256).as_str(),
        ] {
            assert!(!is_valid_idempotency_key(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(query_escape("abc.DEF-_~"), "abc.DEF-_~");
    }
}
