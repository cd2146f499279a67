//! Validated values: each newtype can only be built by `parse`, so holding one proves
//! the value passed the rule written next to it.
//!
//! `parse` reports an [`Invalid`] (a code and a message, no field): the operation that
//! reads a whole input knows the field path and turns it into a [`FieldError`]. A
//! structured value ([`CustomFields`]) reports an [`InvalidWithin`]: the failure and
//! where inside the value it is, appended to the field's path (`custom_fields.tier`).
//!
//! No string of an input or a filter may contain NUL (U+0000): PostgreSQL cannot store
//! it (`text` refuses the byte, `jsonb` the `\u0000` escape) while SQLite can, so
//! refusing it here makes both backends answer alike — a validation error, never a 500
//! on one and a stored row on the other — and no statement ever carries one.

use std::fmt;

use serde_json::{Map, Value};

use crate::error::{Error, FieldError};

/// Why a value was rejected: a stable code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Stable machine-readable reason (`invalid_email`, `too_long`, …).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl Invalid {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// This failure, located at `field`.
    pub fn at(self, field: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            code: self.code,
            message: self.message,
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// Why a structured value was rejected, and where inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidWithin {
    /// Where in the value, as a continuation of the field's path (`.tier`,
    /// `.tier[1].note`); empty for the value as a whole.
    pub path: String,
    /// What is wrong there.
    pub invalid: Invalid,
}

impl InvalidWithin {
    /// This failure, inside `field`: located at `field` followed by [`Self::path`].
    pub fn at(self, field: impl Into<String>) -> FieldError {
        let mut field = field.into();
        field.push_str(&self.path);
        self.invalid.at(field)
    }
}

impl From<Invalid> for InvalidWithin {
    fn from(invalid: Invalid) -> Self {
        Self {
            path: String::new(),
            invalid,
        }
    }
}

impl fmt::Display for InvalidWithin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.invalid)
    }
}

/// Collects the failures of every field of one input, so the caller learns about all
/// of them at once.
#[derive(Debug, Default)]
pub(crate) struct Check {
    errors: Vec<FieldError>,
}

impl Check {
    /// The value if it parsed; otherwise records the failure at `field` (or inside it).
    pub(crate) fn field<T, E: Into<InvalidWithin>>(
        &mut self,
        field: &str,
        parsed: Result<T, E>,
    ) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(invalid) => {
                self.errors.push(invalid.into().at(field));
                None
            }
        }
    }

    /// Records a failure that is not the result of a parse.
    pub(crate) fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// `Ok` when no field failed.
    pub(crate) fn finish(self) -> Result<(), Error> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.errors))
        }
    }

    /// The validation error. Called when some field did not parse, so it is never empty.
    pub(crate) fn fail(self) -> Error {
        debug_assert!(!self.errors.is_empty());
        Error::Validation(self.errors)
    }
}

/// Maximum length, in characters, of names, titles and subjects.
pub const MAX_NAME_CHARS: usize = 200;
/// Maximum size, in bytes, of a free-text body (an activity's notes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Maximum size, in bytes, of the serialized `custom_fields` object.
pub const MAX_CUSTOM_FIELDS_BYTES: usize = 16 * 1024;

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// The failure of a string holding NUL (see the module docs).
fn nul() -> Invalid {
    Invalid::new("invalid_characters", "must not contain NUL (U+0000)")
}

/// Validates a free-text filter (a name prefix): trimmed; any text but NUL, which no
/// stored value can hold (see the module docs).
pub(crate) fn filter_text(raw: &str) -> Result<&str, Invalid> {
    if raw.contains('\0') {
        return Err(nul());
    }
    Ok(raw.trim())
}

/// A short human-entered text: trimmed, 1..=200 characters, no control characters.
/// Used for every name, a person's title and an activity's subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    /// Validates `raw` (trimmed first).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(Invalid::new("required", "must not be empty"));
        }
        if trimmed.chars().count() > MAX_NAME_CHARS {
            return Err(Invalid::new(
                "too_long",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            ));
        }
        if has_control(trimmed) {
            return Err(Invalid::new(
                "invalid_characters",
                "must not contain control characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    /// The validated text.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// Validates a free-text body: at most [`MAX_BODY_BYTES`]; newlines and tabs allowed.
pub(crate) fn body(raw: &str) -> Result<String, Invalid> {
    if raw.len() > MAX_BODY_BYTES {
        return Err(Invalid::new(
            "too_long",
            format!("must be at most {MAX_BODY_BYTES} bytes"),
        ));
    }
    if raw
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(Invalid::new(
            "invalid_characters",
            "must not contain control characters",
        ));
    }
    Ok(raw.to_owned())
}

/// An email address, lower-cased so that lookups and uniqueness ignore case.
///
/// Deliberately simple (one `@`, a non-empty local part, a domain name with a dot):
/// deliverability is for the mail server to decide, not a regex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Validates and normalizes `raw` (trimmed, lower-cased).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let invalid = || {
            Invalid::new(
                "invalid_email",
                "must be an email address like name@example.com",
            )
        };
        let email = raw.trim().to_lowercase();
        if email.len() > 254 {
            return Err(Invalid::new("too_long", "must be at most 254 bytes"));
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || local.len() > 64
            || local
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '@')
            || DomainName::parse(domain).is_err()
        {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    /// The normalized address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalized address.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A company's internet domain (`acme.com`): lower-cased, without a trailing dot, at
/// least two labels of letters, digits and inner hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainName(String);

impl DomainName {
    /// Validates and normalizes `raw` (trimmed, lower-cased, trailing dot removed).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let invalid = || Invalid::new("invalid_domain", "must be a domain name like example.com");
        let lowered = raw.trim().to_lowercase();
        let domain = lowered.strip_suffix('.').unwrap_or(&lowered);
        if domain.is_empty() || domain.len() > 253 {
            return Err(invalid());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |label: &&str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        let tld_ok = labels
            .last()
            .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_lowercase()));
        if labels.len() < 2 || !labels.iter().all(label_ok) || !tld_ok {
            return Err(invalid());
        }
        Ok(Self(domain.to_owned()))
    }

    /// The normalized domain.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalized domain.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A phone number: digits with optional separators (space, `-`, `.`, parentheses) and
/// an optional leading `+`; 7 to 15 digits (E.164). Stored without the separators.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Validates `raw` and strips its separators: `+1 (555) 010-2030` → `+15550102030`.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let invalid = || {
            Invalid::new(
                "invalid_phone",
                "must be a phone number of 7 to 15 digits, optionally starting with +",
            )
        };
        let trimmed = raw.trim();
        let (plus, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => ("+", rest),
            None => ("", trimmed),
        };
        if !rest
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
        {
            return Err(invalid());
        }
        let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
        if !(7..=15).contains(&digits.len()) {
            return Err(invalid());
        }
        Ok(Self(format!("{plus}{digits}")))
    }

    /// The normalized number.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A tenant's URL-safe handle: 3..=63 of `a-z`, `0-9` and inner `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    /// Validates `raw` (trimmed; not lower-cased: `Acme` is rejected, not rewritten).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let slug = raw.trim();
        let ok = (3..=63).contains(&slug.len())
            && slug
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !slug.starts_with('-')
            && !slug.ends_with('-');
        if ok {
            Ok(Self(slug.to_owned()))
        } else {
            Err(Invalid::new(
                "invalid_slug",
                "must be 3 to 63 lower-case letters, digits or inner hyphens",
            ))
        }
    }

    /// The slug.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An account's custom fields: a JSON object of at most [`MAX_CUSTOM_FIELDS_BYTES`]
/// serialized, with keys of 1..=64 characters, and no NUL in any key or string at any
/// depth.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomFields(Map<String, Value>);

impl CustomFields {
    /// Validates `raw`. A failure inside it names where: `.tier` for the value of key
    /// `tier`, `.tier[1].note` deeper down, nothing for the object as a whole (or one of
    /// its own keys).
    pub fn parse(raw: Value) -> Result<Self, InvalidWithin> {
        match raw {
            Value::Object(map) => Self::from_map(map),
            _ => Err(Invalid::new("not_an_object", "must be a JSON object").into()),
        }
    }

    fn from_map(map: Map<String, Value>) -> Result<Self, InvalidWithin> {
        if let Some(key) = map.keys().find(|k| k.is_empty() || k.chars().count() > 64) {
            let shown: String = key.chars().take(64).collect();
            return Err(Invalid::new(
                "invalid_key",
                format!("key `{shown}` must be 1 to 64 characters"),
            )
            .into());
        }
        let size = serde_json::to_vec(&map)
            .map(|bytes| bytes.len())
            .unwrap_or(usize::MAX);
        if size > MAX_CUSTOM_FIELDS_BYTES {
            return Err(Invalid::new(
                "too_large",
                format!("must be at most {MAX_CUSTOM_FIELDS_BYTES} bytes of JSON"),
            )
            .into());
        }
        // Walked after the size check, so never more than 16 KiB of JSON.
        if let Some(found) = first_nul(&map) {
            return Err(found);
        }
        Ok(Self(map))
    }

    /// The stored object, as it is: it is only validated again once a patch is merged
    /// into it, so a limit tightened later never silently drops stored data.
    pub(crate) fn stored(value: &Value) -> Self {
        Self(value.as_object().cloned().unwrap_or_default())
    }

    /// Applies a JSON merge patch (RFC 7396) of the top-level keys: each key of `patch`
    /// replaces the stored one, and a `null` removes it. The result is validated again
    /// (so a key stored before a rule was tightened is reported too, until the patch
    /// replaces or removes it).
    pub fn merge(mut self, patch: Value) -> Result<Self, InvalidWithin> {
        let Value::Object(patch) = patch else {
            return Err(Invalid::new("not_an_object", "must be a JSON object").into());
        };
        for (key, value) in patch {
            if value.is_null() {
                self.0.remove(&key);
            } else {
                self.0.insert(key, value);
            }
        }
        Self::from_map(self.0)
    }

    /// The validated object.
    pub fn into_inner(self) -> Map<String, Value> {
        self.0
    }

    /// The validated object, as a JSON value for storage.
    pub(crate) fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// The first NUL in `map`'s keys or strings, at any depth: at the string holding it, or
/// — for a key — at the object holding the key. Iterative, so no input nests deep enough
/// to exhaust the stack.
fn first_nul(map: &Map<String, Value>) -> Option<InvalidWithin> {
    let mut pending: Vec<(String, &Value)> = Vec::new();
    let mut object = Some((String::new(), map));
    loop {
        if let Some((path, map)) = object.take() {
            if let Some(key) = map.keys().find(|k| k.contains('\0')) {
                let shown: String = key.chars().take(64).flat_map(char::escape_debug).collect();
                let message = format!("key `{shown}` must not contain NUL (U+0000)");
                return Some(InvalidWithin {
                    path,
                    invalid: Invalid::new("invalid_key", message),
                });
            }
            // Reversed onto the stack, so they are visited in order.
            pending.extend(map.iter().rev().map(|(k, v)| (format!("{path}.{k}"), v)));
        }
        let (path, value) = pending.pop()?;
        match value {
            Value::String(text) if text.contains('\0') => {
                return Some(InvalidWithin {
                    path,
                    invalid: nul(),
                });
            }
            Value::Object(map) => object = Some((path, map)),
            Value::Array(items) => pending.extend(
                items
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, item)| (format!("{path}[{i}]"), item)),
            ),
            _ => {}
        }
    }
}

/// Reads an enum stored as text; an unknown value is a corrupt row, not bad input.
pub(crate) fn stored<T: std::str::FromStr>(
    resource: crate::error::Resource,
    text: &str,
) -> Result<T, Error> {
    text.parse().map_err(|_| Error::Corrupt {
        resource,
        detail: format!("unknown value `{text}`"),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded_to_two_hundred_characters() {
        assert_eq!(
            Name::parse("  Ada  ").map(Name::into_inner),
            Ok("Ada".to_owned())
        );
        assert_eq!(Name::parse("   ").map_err(|e| e.code), Err("required"));
        assert!(Name::parse(&"é".repeat(200)).is_ok());
        assert_eq!(
            Name::parse(&"é".repeat(201)).map_err(|e| e.code),
            Err("too_long")
        );
        assert_eq!(
            Name::parse("a\u{0}b").map_err(|e| e.code),
            Err("invalid_characters")
        );
    }

    #[test]
    fn emails_are_lower_cased_and_need_a_local_part_and_a_dotted_domain() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").map(Email::into_inner),
            Ok("ada@example.com".to_owned())
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "a b@example.com",
            "ada@@example.com",
            "ada@-x.com",
        ] {
            assert_eq!(
                Email::parse(bad).map_err(|e| e.code),
                Err("invalid_email"),
                "{bad}"
            );
        }
        assert_eq!(
            Email::parse(&format!("{}@example.com", "a".repeat(250))).map_err(|e| e.code),
            Err("too_long")
        );
    }

    #[test]
    fn domains_are_normalized_and_need_two_labels() {
        assert_eq!(
            DomainName::parse("Acme.COM.").map(DomainName::into_inner),
            Ok("acme.com".to_owned())
        );
        assert!(DomainName::parse("sub.acme-corp.co.uk").is_ok());
        for bad in [
            "acme",
            "acme..com",
            "-acme.com",
            "acme.com-",
            "http://acme.com",
            "acme.123",
            "ac me.com",
        ] {
            assert!(DomainName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn phones_keep_digits_and_a_leading_plus() {
        assert_eq!(
            Phone::parse("+1 (555) 010-2030").map(Phone::into_inner),
            Ok("+15550102030".to_owned())
        );
        assert_eq!(
            Phone::parse("030.1234.567").map(Phone::into_inner),
            Ok("0301234567".to_owned())
        );
        for bad in [
            "123456",
            "1234567890123456",
            "+1 555 CALL NOW",
            "1+5550102030",
            "",
        ] {
            assert_eq!(
                Phone::parse(bad).map_err(|e| e.code),
                Err("invalid_phone"),
                "{bad}"
            );
        }
    }

    #[test]
    fn slugs_are_lower_case_letters_digits_and_inner_hyphens() {
        assert!(Slug::parse("acme-42").is_ok());
        for bad in ["ac", "Acme", "-acme", "acme-", "ac me", &"a".repeat(64)] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn custom_fields_must_be_a_small_object() {
        assert!(CustomFields::parse(json!({"tier": "gold", "seats": 12})).is_ok());
        assert_eq!(
            CustomFields::parse(json!([1, 2])).map_err(|e| e.invalid.code),
            Err("not_an_object")
        );
        assert_eq!(
            CustomFields::parse(json!({"": 1})).map_err(|e| e.invalid.code),
            Err("invalid_key")
        );
        let big = json!({ "blob": "x".repeat(MAX_CUSTOM_FIELDS_BYTES) });
        assert_eq!(
            CustomFields::parse(big).map_err(|e| e.invalid.code),
            Err("too_large")
        );
    }

    #[test]
    fn custom_fields_refuse_a_nul_at_any_depth_and_say_where() {
        let at = |raw: Value| {
            CustomFields::parse(raw)
                .map(drop)
                .map_err(|e| e.at("custom_fields"))
                .map_err(|e| (e.field, e.code))
        };
        let failed = |field: &str, code| Err((field.to_owned(), code));
        assert_eq!(
            at(json!({"k": "a\u{0}b"})),
            failed("custom_fields.k", "invalid_characters")
        );
        assert_eq!(
            at(json!({"a\u{0}b": 1})),
            failed("custom_fields", "invalid_key")
        );
        assert_eq!(
            at(json!({"k": {"inner": ["x", "\u{0}"]}})),
            failed("custom_fields.k.inner[1]", "invalid_characters")
        );
        assert_eq!(
            at(json!({"k": [{"\u{0}": true}]})),
            failed("custom_fields.k[0]", "invalid_key")
        );
        assert_eq!(
            at(json!({"a": "fine", "b": ["\u{0}"], "c": "\u{0}"})),
            failed("custom_fields.b[0]", "invalid_characters"),
            "the first in document order"
        );
        assert_eq!(
            at(json!({"k": "other controls \u{1}\t\n and \\u0000 as text are data"})),
            Ok(())
        );
        let message = CustomFields::parse(json!({"a\u{0}b": 1})).map_err(|e| e.invalid.message);
        assert_eq!(
            message,
            Err("key `a\\0b` must not contain NUL (U+0000)".to_owned()),
            "the key is shown escaped"
        );

        let stored = CustomFields::parse(json!({"tier": "gold"})).unwrap_or_default();
        let merged = stored
            .clone()
            .merge(json!({"tier": ["gold", {"note": "\u{0}"}]}));
        assert_eq!(
            merged.map_err(|e| e.at("custom_fields").field),
            Err("custom_fields.tier[1].note".to_owned())
        );
        let nul_key = stored.merge(json!({"\u{0}": "v"}));
        assert_eq!(nul_key.map_err(|e| e.invalid.code), Err("invalid_key"));
    }

    #[test]
    fn no_parser_accepts_a_nul() {
        let codes = [
            Name::parse("a\u{0}b").map(drop).map_err(|e| e.code),
            Email::parse("a\u{0}b@example.com")
                .map(drop)
                .map_err(|e| e.code),
            DomainName::parse("exa\u{0}mple.com")
                .map(drop)
                .map_err(|e| e.code),
            Phone::parse("+1555\u{0}0102030")
                .map(drop)
                .map_err(|e| e.code),
            Slug::parse("ac\u{0}me").map(drop).map_err(|e| e.code),
            body("line\n\u{0}").map(drop).map_err(|e| e.code),
            filter_text("glo\u{0}").map(drop).map_err(|e| e.code),
        ];
        assert!(codes.iter().all(Result::is_err), "{codes:?}");
        assert_eq!(filter_text("  Glo "), Ok("Glo"));
    }

    #[test]
    fn a_custom_fields_merge_replaces_keys_and_removes_nulls() {
        let fields = CustomFields::parse(json!({"tier": "gold", "seats": 12})).unwrap_or_default();
        let merged = fields
            .merge(json!({"seats": null, "region": "emea"}))
            .map(CustomFields::into_value);
        assert_eq!(merged, Ok(json!({"tier": "gold", "region": "emea"})));
        let too_big =
            CustomFields::default().merge(json!({ "blob": "x".repeat(MAX_CUSTOM_FIELDS_BYTES) }));
        assert_eq!(too_big.map_err(|e| e.invalid.code), Err("too_large"));
    }

    #[test]
    fn bodies_allow_newlines_but_not_other_control_characters() {
        assert!(body("line one\nline two\ttab").is_ok());
        assert_eq!(
            body("bell\u{7}").map_err(|e| e.code),
            Err("invalid_characters")
        );
        assert_eq!(
            body(&"x".repeat(MAX_BODY_BYTES + 1)).map_err(|e| e.code),
            Err("too_long")
        );
    }

    #[test]
    fn a_check_reports_every_failing_field_with_its_path() {
        let mut check = Check::default();
        assert!(check.field("name", Name::parse("")).is_none());
        assert!(check.field("email", Email::parse("nope")).is_none());
        assert!(check.field("phone", Phone::parse("+15550102030")).is_some());
        let Error::Validation(errors) = check.fail() else {
            panic!("validation expected")
        };
        let fields: Vec<_> = errors.iter().map(|e| (e.field.as_str(), e.code)).collect();
        assert_eq!(fields, [("name", "required"), ("email", "invalid_email")]);
    }
}
