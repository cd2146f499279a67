//! API keys: `tnt_<prefix>_<secret><checksum>`.
//!
//! - `prefix`: 8 random base62 characters, stored in clear and unique across tenants, so
//!   authentication finds the key before it knows the tenant.
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
/// Length of a whole key.
pub const KEY_LEN: usize = KEY_PREFIX.len() + PREFIX_LEN + 1 + SECRET_LEN + CHECKSUM_LEN;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly generated key: the whole key to show once, and what to store.
#[derive(Clone)]
pub struct NewKey {
    /// The whole key; returned to the caller once, never stored.
    pub token: String,
    /// The lookup prefix (stored in clear).
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
    /// The lookup prefix.
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

fn checksum(body: &str) -> String {
    let mut n = u64::from(crc32fast::hash(body.as_bytes()));
    let mut digits = [b'0'; CHECKSUM_LEN];
    for digit in digits.iter_mut().rev() {
        *digit = BASE62[usize::try_from(n % 62).unwrap_or(0)];
        n /= 62;
    }
    String::from_utf8_lossy(&digits).into_owned()
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

/// A new random key.
pub fn generate(pepper: &[u8]) -> NewKey {
    let prefix = random_base62(PREFIX_LEN);
    let secret = random_base62(SECRET_LEN);
    let body = format!("{KEY_PREFIX}{prefix}_{secret}");
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
    if token.len() != KEY_LEN || !token.is_ascii() {
        return None;
    }
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (prefix, rest) = rest.split_at(PREFIX_LEN);
    let rest = rest.strip_prefix('_')?;
    let (secret, check) = rest.split_at(SECRET_LEN);
    let base62 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !(base62(prefix) && base62(secret) && base62(check)) {
        return None;
    }
    let body = &token[..token.len() - CHECKSUM_LEN];
    (checksum(body) == check).then_some(ParsedKey { prefix, secret })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEPPER: &[u8] = b"pepper-pepper-pepper-pepper-pepp";

    #[test]
    fn a_generated_key_parses_and_its_secret_verifies_against_the_stored_hash() {
        let key = generate(PEPPER);
        assert_eq!(key.token.len(), KEY_LEN);
        assert!(key.token.starts_with("tnt_"));
        let parsed = parse(&key.token);
        let Some(parsed) = parsed else {
            panic!("did not parse")
        };
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
        let key = generate(PEPPER).token;
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
        let a = generate(PEPPER);
        let b = generate(PEPPER);
        assert_ne!(a.token, b.token);
        assert_ne!(a.prefix, b.prefix);
    }
}
