//! Opaque pagination cursors: `base64url(payload) . base64url(tag)`.
//!
//! The payload is the domain's [`Position`] (where the last page ended) plus a
//! fingerprint of what produced it: the operation, the sort, every filter and the
//! tenant. The tag is a truncated HMAC-SHA256 over the payload with a server key. A
//! cursor that was edited, or that is replayed with other filters or on another list,
//! fails to decode and the request gets a 400 problem — it can never silently continue
//! a different walk.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::pagination::Position;
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::problem::{Problem, kind};

/// Bytes of HMAC tag kept (128 bits).
const TAG_BYTES: usize = 16;
/// Cursor format version, so the format can change without misreading old cursors.
const VERSION: u8 = 1;

/// What a cursor is bound to: a list operation with one set of filters, for one tenant
/// (the sort is bound too: it travels in the signed payload). Two requests make interchangeable cursors only if their bindings
/// are equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding(String);

impl Binding {
    /// Binds to `operation` (e.g. `list_people`), `tenant`, and `parts` — each filter as
    /// `name=value` (absent filters included as empty, so adding one changes the binding).
    pub fn new(operation: &str, tenant: &tenancy::TenantId, parts: &[(&str, String)]) -> Self {
        let mut text = format!("{operation}\n{tenant}");
        for (name, value) in parts {
            text.push('\n');
            text.push_str(name);
            text.push('=');
            text.push_str(value);
        }
        Self(text)
    }

    fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    v: u8,
    /// The order the walk is in (`id`, `updated_at`, `occurred_at_desc`); signed, so a
    /// request that names no sort can continue in the cursor's.
    s: String,
    /// Fingerprint of the [`Binding`].
    b: String,
    /// Where the previous page ended; `None` = the start (an empty first page of a sync).
    p: Option<Position>,
}

/// Signs and verifies cursors with one key.
#[derive(Clone)]
pub struct CursorCodec {
    key: [u8; 32],
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec([redacted])")
    }
}

impl CursorCodec {
    /// A codec with this signing key.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn tag(&self, payload: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac =
            <Hmac<Sha256>>::new_from_slice(&self.key).expect("HMAC accepts any key length");
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// The cursor continuing a walk in `sort` order after `position`, for `binding`.
    pub fn encode(&self, binding: &Binding, sort: &str, position: Option<Position>) -> String {
        let payload = Payload {
            v: VERSION,
            s: sort.to_owned(),
            b: binding.fingerprint(),
            p: position,
        };
        let json = serde_json::to_vec(&payload).unwrap_or_default();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE_NO_PAD.encode(self.tag(&json))
        )
    }

    /// The sort and position inside `cursor`, if it is authentic and was made for
    /// `binding`.
    ///
    /// # Errors
    /// A 400 `invalid-cursor` problem naming the `cursor` parameter.
    pub fn decode(
        &self,
        cursor: &str,
        binding: &Binding,
    ) -> Result<(String, Option<Position>), Problem> {
        let invalid = |why: &str| {
            let mut problem = Problem::invalid_parameter("cursor", why.to_owned());
            problem.kind = kind::INVALID_CURSOR.to_owned();
            problem.title = "Invalid cursor".to_owned();
            problem
        };
        let (payload_b64, tag_b64) = cursor
            .split_once('.')
            .ok_or_else(|| invalid("not a cursor returned by this API"))?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| invalid("not a cursor returned by this API"))?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag_b64)
            .map_err(|_| invalid("not a cursor returned by this API"))?;
        if !bool::from(self.tag(&payload).as_slice().ct_eq(&tag)) {
            return Err(invalid(
                "the cursor was modified or was not issued by this API",
            ));
        }
        let payload: Payload = serde_json::from_slice(&payload)
            .map_err(|_| invalid("the cursor is from an incompatible version"))?;
        if payload.v != VERSION {
            return Err(invalid("the cursor is from an incompatible version"));
        }
        if !bool::from(payload.b.as_bytes().ct_eq(binding.fingerprint().as_bytes())) {
            return Err(invalid(
                "the cursor was made for a different list, sort or filters: repeat the original query with it",
            ));
        }
        Ok((payload.s, payload.p))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use tenancy::TenantId;
    use uuid::Uuid;

    use super::*;

    fn codec() -> CursorCodec {
        CursorCodec::new([7; 32])
    }

    fn binding(stage: &str) -> Binding {
        let tenant = TenantId::from_uuid(Uuid::nil());
        Binding::new("list_people", &tenant, &[("stage", stage.to_owned())])
    }

    #[test]
    fn a_cursor_round_trips_for_the_same_binding() {
        let position = Some(Position::UpdatedAt(Utc::now(), Uuid::now_v7()));
        let cursor = codec().encode(&binding("lead"), "updated_at", position);
        assert_eq!(
            codec().decode(&cursor, &binding("lead")).ok(),
            Some(("updated_at".to_owned(), position))
        );
        assert!(
            cursor
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        );
    }

    #[test]
    fn a_cursor_replayed_with_other_filters_is_rejected() {
        let cursor = codec().encode(&binding("lead"), "id", Some(Position::Id(Uuid::now_v7())));
        let err = codec().decode(&cursor, &binding("customer")).err();
        assert_eq!(
            err.map(|p| (p.status, p.kind)),
            Some((400, kind::INVALID_CURSOR.to_owned()))
        );
    }

    #[test]
    fn a_tampered_cursor_is_rejected() {
        let cursor = codec().encode(&binding("lead"), "id", Some(Position::Id(Uuid::nil())));
        let (payload, tag) = cursor.split_once('.').unwrap_or_default();
        let forged_payload = URL_SAFE_NO_PAD.encode(
            String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap_or_default())
                .unwrap_or_default()
                .replace("00000000", "ffffffff"),
        );
        for bad in [
            format!("{forged_payload}.{tag}"),
            format!("{payload}.AAAA"),
            "garbage".to_owned(),
            String::new(),
        ] {
            assert!(codec().decode(&bad, &binding("lead")).is_err(), "{bad}");
        }
        let other_key = CursorCodec::new([8; 32]);
        assert!(other_key.decode(&cursor, &binding("lead")).is_err());
    }

    #[test]
    fn an_empty_sync_page_still_yields_a_cursor_from_the_start() {
        let cursor = codec().encode(&binding("lead"), "updated_at", None);
        assert_eq!(
            codec().decode(&cursor, &binding("lead")).ok(),
            Some(("updated_at".to_owned(), None))
        );
    }
}
