//! The response fields of draft-ietf-httpapi-ratelimit-headers (draft 11, the latest),
//! serialized as RFC 9651 structured fields.
//!
//! - `RateLimit-Policy`: a List of Quota Policy Items. Each item is a String naming the
//!   policy with the required `q` (quota, Integer) and optional `w` (window in seconds,
//!   Integer) parameters: `"tenant";q=600;w=60, "credential";q=120;w=60`. No `qu`: the
//!   draft's registry has no unit for calculated cost, and the unit defaults to requests;
//!   our cost units are documented with each operation instead.
//! - `RateLimit`: a List of Service Limit Items, one per policy of the request, each the
//!   policy's name with `r` (available quota, Integer) and `t` (effective window in
//!   seconds, Integer): `"tenant";r=583;t=2, "credential";r=17;t=41`.
//! - `Retry-After` (RFC 9110): delay-seconds, on a refused request only.
//!
//! Members are joined by `", "` as RFC 9651's serializer does.

use std::fmt::Write as _;
use std::time::Duration;

/// `RateLimit-Policy`: the quota policies a response's request was held to.
pub const RATELIMIT_POLICY: &str = "RateLimit-Policy";
/// `RateLimit`: what is left of each policy after this request.
pub const RATELIMIT: &str = "RateLimit";
/// `Retry-After`: whole seconds to wait, on a refused request.
pub const RETRY_AFTER: &str = "Retry-After";
/// `X-RateLimit-Cost`: the cost units this request was charged.
pub const RATELIMIT_COST: &str = "X-RateLimit-Cost";
/// The draft's problem type for a refused request (RFC 9457), with its
/// `violated-policies` extension member.
pub const QUOTA_EXCEEDED_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// Appends `s` as an RFC 9651 String (quoted; `"` and `\` escaped).
fn push_sf_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Whole seconds, rounded up: a client that waits this long has waited long enough.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The `RateLimit-Policy` field value for `policies`, each given as its name, quota and
/// window.
pub(crate) fn policy_field<'a>(
    policies: impl ExactSizeIterator<Item = (&'a str, u64, Duration)>,
) -> String {
    let mut out = String::with_capacity(40 * policies.len());
    for (i, (name, quota, window)) in policies.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_sf_string(&mut out, name);
        let _ = write!(out, ";q={quota};w={}", window.as_secs());
    }
    out
}

/// The start of the `RateLimit` item of the policy named `name`, the same on every
/// response: `"tenant";r=`.
pub(crate) fn ratelimit_item_prefix(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 5);
    push_sf_string(&mut out, name);
    out.push_str(";r=");
    out
}

/// Appends one `RateLimit` item — `prefix` (from [`ratelimit_item_prefix`]), then
/// `remaining` and the effective `window` — after a `", "` unless it is the first.
pub(crate) fn push_ratelimit_item(
    out: &mut String,
    prefix: &str,
    remaining: u64,
    window: Duration,
) {
    if !out.is_empty() {
        out.push_str(", ");
    }
    out.push_str(prefix);
    push_u64(out, remaining);
    out.push_str(";t=");
    push_u64(out, ceil_secs(window));
}

/// Appends `n` in decimal, two digits at a time. (This runs for every response; `core::fmt`
/// costs several times more for the same digits.)
pub(crate) fn push_u64(out: &mut String, mut n: u64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    while n >= 10 {
        let pair = usize::try_from(n % 100).unwrap_or(0) * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        n /= 100;
    }
    if n > 0 || at == digits.len() {
        at -= 1;
        digits[at] = b'0' + u8::try_from(n).unwrap_or(0);
    }
    // Always ASCII digits.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_field_is_a_structured_list_of_strings_with_q_and_w() {
        let minute = Duration::from_secs(60);
        let field =
            policy_field([("tenant", 600, minute), ("credential", 120, minute)].into_iter());
        assert_eq!(field, r#""tenant";q=600;w=60, "credential";q=120;w=60"#);
    }

    #[test]
    fn the_ratelimit_field_rounds_remaining_down_and_the_window_up() {
        let mut field = String::new();
        push_ratelimit_item(
            &mut field,
            &ratelimit_item_prefix("tenant"),
            583,
            Duration::from_secs(2),
        );
        let prefix = ratelimit_item_prefix("credential");
        push_ratelimit_item(&mut field, &prefix, 17, Duration::from_millis(40_001));
        assert_eq!(field, r#""tenant";r=583;t=2, "credential";r=17;t=41"#);
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for n in [0, 7, 10, 99, 100, 305, 1_000_000, 9_999_999, u64::MAX] {
            let mut out = String::from("x");
            push_u64(&mut out, n);
            assert_eq!(out, format!("x{n}"));
        }
    }

    #[test]
    fn strings_escape_quotes_and_backslashes() {
        let mut out = String::new();
        push_sf_string(&mut out, r#"a"b\c"#);
        assert_eq!(out, r#""a\"b\\c""#);
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::from_micros(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
    }
}
