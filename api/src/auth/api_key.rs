//! API keys: `tnt_<tenant>_<prefix>_<secret><checksum>` (74 characters), and the
//! legacy `tnt_<prefix>_<secret><checksum>` (51), which keeps working.
//!
//! - `tenant`: the tenant's id, 22 base62 characters. It routes the lookup: the key is
//!   found with a handle of that tenant (`WHERE tenant_id = $t AND prefix = $p`), a
//!   single-shard read on Citus and no use of the cross-tenant escape hatch. A key whose
//!   tenant part is altered is simply not found in the tenant it names. The tenant id is
//!   not a secret (it is in every JWT and log line); the key stays opaque otherwise.
//!   A legacy key is routed by its prefix: one read of the `api_key_prefixes` directory
//!   (through the escape hatch; a reference table under Citus), then the key is read with
//!   its tenant's handle like a new one.
//! - `prefix`: 8 random base62 characters. What is stored in clear (and shown as the
//!   key's `prefix`) is the whole start of the key up to the secret —
//!   `tnt_<tenant>_<prefix>`, or `tnt_<prefix>` for a legacy key — unique across tenants.
//! - `secret`: 32 random base62 characters (~190 bits); only
//!   `hex(HMAC-SHA256(pepper, secret))` is stored. A keyed hash, not a password hash:
//!   the secret is high-entropy, so a slow hash buys nothing and would cost every request.
//! - `checksum`: CRC32 of everything before it, 6 base62 characters, so a mistyped or
//!   truncated key is refused without a database round trip, and secret scanners can
//!   recognise real keys.

use hmac::{Hmac, KeyInit as _, Mac as _};
use rand::RngCore as _;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// What every key starts with.
pub const KEY_PREFIX: &str = "tnt_";
const PREFIX_LEN: usize = 8;
const SECRET_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const TENANT_LEN: usize = 22;
/// Length of a whole legacy key (no tenant part).
pub const LEGACY_KEY_LEN: usize = KEY_PREFIX.len() + PREFIX_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;
/// Length of a whole key.
pub const KEY_LEN: usize = LEGACY_KEY_LEN + TENANT_LEN + 1;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key: the whole key to show once, and what to store.
#[derive(Clone)]
pub struct NewKey {
    /// The whole key; returned to the caller once, never stored.
    pub token: String,
    /// The start of the key up to the secret (stored in clear, the lookup key).
    pub prefix: String,
    /// `hex(HMAC-SHA256(pepper, secret))` (stored).
    pub secret_hash: String,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// The parts of a well-formed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    /// The tenant the key says it belongs to (`None` for a legacy key): where to look.
    pub tenant: Option<uuid::Uuid>,
    /// The start of the key up to the secret: the stored lookup prefix.
    pub prefix: &'a str,
    /// The secret part.
    pub secret: &'a str,
}

fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut rng = rand::rng();
    while out.len() < len {
        let mut byte = [0u8; 1];
        rng.fill_bytes(&mut byte);
        // Rejection sampling: 248 = 4 × 62, so the kept bytes map uniformly.
        if byte[0] < 248 {
            out.push(char::from(BASE62[usize::from(byte[0] % 62)]));
        }
    }
    out
}

/// The check digits of a key body (everything before them): public so tools (and tests)
/// can validate or assemble keys offline; it proves nothing about the secret.
pub fn checksum(body: &str) -> String {
    let mut n = u64::from(crc32fast::hash(body.as_bytes()));
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[usize::try_from(n % 62).unwrap_or(0)];
        n /= 62;
    }
    String::from_utf8_lossy(&digits).into_owned()
}

/// A UUID as exactly 22 base62 digits (the tenant part of a key).
pub fn encode_uuid(id: uuid::Uuid) -> String {
    let mut n = id.as_u128();
    let mut digits = [b'0'; TENANT_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[usize::try_from(n % 62).unwrap_or(0)];
        n /= 62;
    }
    String::from_utf8_lossy(&digits).into_owned()
}

/// The UUID of 22 base62 digits, if they are that.
fn decode_uuid(text: &str) -> Option<uuid::Uuid> {
    let mut n: u128 = 0;
    for byte in text.bytes() {
        let digit = BASE62.iter().position(|b| *b == byte)?;
        n = n
            .checked_mul(62)?
            .checked_add(u128::try_from(digit).ok()?)?;
    }
    Some(uuid::Uuid::from_u128(n))
}

/// `hex(HMAC-SHA256(pepper, secret))`.
pub fn hash_secret(pepper: &[u8], secret: &str) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(pepper).expect("HMAC accepts any key length");
    mac.update(secret.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `secret` hashes to `stored`, compared in constant time.
pub fn verify_secret(pepper: &[u8], secret: &str, stored: &str) -> bool {
    bool::from(
        hash_secret(pepper, secret)
            .as_bytes()
            .ct_eq(stored.as_bytes()),
    )
}

/// A new random key of `tenant`.
pub fn generate(pepper: &[u8], tenant: uuid::Uuid) -> NewKey {
    let prefix = random_base62(PREFIX_LEN);
    let secret = random_base62(SECRET_LEN);
    let prefix = format!("{KEY_PREFIX}{}_{prefix}", encode_uuid(tenant));
    let body = format!("{prefix}_{secret}");
    let token = format!("{body}{}", checksum(&body));
    NewKey {
        secret_hash: hash_secret(pepper, &secret),
        prefix,
        token,
    }
}

/// Whether `token` looks like an API key at all (as opposed to a JWT).
pub fn looks_like_key(token: &str) -> bool {
    token.starts_with(KEY_PREFIX)
}

/// The parts of `token`, if it is well-formed and its checksum matches.
pub fn parse(token: &str) -> Option<ParsedKey<'_>> {
    if !(token.len() == KEY_LEN || token.len() == LEGACY_KEY_LEN) || !token.is_ascii() {
        return None;
    }
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (tenant, rest) = if token.len() == KEY_LEN {
        let (tenant, rest) = rest.split_at(TENANT_LEN);
        (Some(decode_uuid(tenant)?), rest.strip_prefix('_')?)
    } else {
        (None, rest)
    };
    let (random, rest) = rest.split_at(PREFIX_LEN);
    let rest = rest.strip_prefix('_')?;
    let (secret, check) = rest.split_at(SECRET_LEN);
    let base62 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !(base62(random) && base62(secret) && base62(check)) {
        return None;
    }
    let prefix = &token[..token.len() - CHECKSUM_LEN - SECRET_LEN - 1];
    let body = &token[..token.len() - CHECKSUM_LEN];
    (checksum(body) == check).then_some(ParsedKey {
        tenant,
        prefix,
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEPPER: &[u8] = b"pepper-pepper-pepper-pepper-pepp";

    #[test]
    fn a_generated_key_parses_and_its_secret_verifies_against_the_stored_hash() {
        let tenant = uuid::Uuid::now_v7();
        let key = generate(PEPPER, tenant);
        assert_eq!(key.token.len(), KEY_LEN);
        assert!(key.token.starts_with("tnt_"));
        let parsed = parse(&key.token);
        let Some(parsed) = parsed else {
            panic!("did not parse")
        };
        assert_eq!(parsed.tenant, Some(tenant));
        assert_eq!(parsed.prefix, key.prefix);
        assert!(verify_secret(PEPPER, parsed.secret, &key.secret_hash));
        assert!(!verify_secret(
            b"another-pepper",
            parsed.secret,
            &key.secret_hash
        ));
        assert!(!key.secret_hash.contains(parsed.secret));
    }

    #[test]
    fn a_typo_anywhere_in_a_key_fails_the_checksum() {
        let key = generate(PEPPER, uuid::Uuid::now_v7()).token;
        for i in KEY_PREFIX.len()..key.len() {
            let mut bytes = key.clone().into_bytes();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(bytes).unwrap_or_default();
            if typo != key {
                assert!(parse(&typo).is_none(), "accepted a typo at {i}");
            }
        }
        assert!(parse(&key[..key.len() - 1]).is_none());
        assert!(parse("tnt_").is_none());
        assert!(parse("").is_none());
    }

    #[test]
    fn keys_are_unique() {
        let tenant = uuid::Uuid::now_v7();
        let a = generate(PEPPER, tenant);
        let b = generate(PEPPER, tenant);
        assert_ne!(a.token, b.token);
        assert_ne!(a.prefix, b.prefix);
    }

    #[test]
    fn a_legacy_key_still_parses_without_a_tenant() {
        let prefix = random_base62(PREFIX_LEN);
        let secret = random_base62(SECRET_LEN);
        let body = format!("{KEY_PREFIX}{prefix}_{secret}");
        let token = format!("{body}{}", checksum(&body));
        assert_eq!(token.len(), LEGACY_KEY_LEN);
        let parsed = parse(&token).expect("a legacy key parses");
        assert_eq!(parsed.tenant, None);
        assert_eq!(parsed.prefix, format!("{KEY_PREFIX}{prefix}"));
        assert_eq!(parsed.secret, secret);
    }

    #[test]
    fn tenant_ids_round_trip_through_base62() {
        for id in [uuid::Uuid::nil(), uuid::Uuid::max(), uuid::Uuid::now_v7()] {
            let text = encode_uuid(id);
            assert_eq!(text.len(), TENANT_LEN);
            assert_eq!(decode_uuid(&text), Some(id));
        }
        assert_eq!(decode_uuid("zzzzzzzzzzzzzzzzzzzzzz"), None, "past 2^128");
    }
}
