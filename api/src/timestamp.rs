//! [`Timestamp`]: an instant as the API writes it — RFC 3339 in UTC, `+00:00`, with
//! fractional seconds as needed (chrono's `to_rfc3339`) — one type for every time a
//! response carries, instead of a serializer attribute on each field.
//!
//! Rule: the same bytes from both writers of a response body. poem-openapi's `ToJSON` and
//! the spec (`string`, `date-time`) come from `DateTime<Utc>` through the `NewType`
//! derive; serde (the fast path of response bodies, see [`crate::http::JsonOut`]) writes
//! the same text without allocating.

use chrono::{DateTime, Utc};
use poem_openapi::NewType;

// An instant in a response: `2026-01-15T09:30:00.123456+00:00`. (No doc comment: the
// derive would make it the title of every time in the spec.)
#[expect(
    missing_docs,
    reason = "a doc comment would become each time's title in the spec"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, NewType)]
#[oai(from_parameter = false, from_multipart = false, to_header = false)]
pub struct Timestamp(pub DateTime<Utc>);

impl From<DateTime<Utc>> for Timestamp {
    fn from(at: DateTime<Utc>) -> Self {
        Self(at)
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0_u8; RFC3339_MAX];
        match write_rfc3339(&self.0, &mut buf) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.serialize_str(&self.0.to_rfc3339()),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.fffffffff+00:00`.
const RFC3339_MAX: usize = 35;

/// `at.to_rfc3339()` written into `buf` without allocating or going through `fmt` (three
/// times per item of a list page): years 0 to 9999 outside a leap second; `None`
/// otherwise, for the caller to fall back to chrono.
fn write_rfc3339<'b>(
    at: &chrono::DateTime<chrono::Utc>,
    buf: &'b mut [u8; RFC3339_MAX],
) -> Option<&'b str> {
    use chrono::{Datelike as _, Timelike as _};
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    let nanos = at.nanosecond();
    if nanos >= 1_000_000_000 {
        return None;
    }
    // chrono's `SecondsFormat::AutoSi`: no fraction, or 3, 6 or 9 digits.
    let (fraction, digits) = match nanos {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    let mut put = |at: usize, value: u32, width: usize| {
        let mut value = value;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, year, 4);
    put(5, at.month(), 2);
    put(8, at.day(), 2);
    put(11, at.hour(), 2);
    put(14, at.minute(), 2);
    put(17, at.second(), 2);
    if digits > 0 {
        put(20, fraction, digits);
    }
    let end = if digits > 0 { 20 + digits } else { 19 };
    for (i, sep) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        if i < end {
            buf[i] = sep;
        }
    }
    buf[end..end + 6].copy_from_slice(b"+00:00");
    std::str::from_utf8(&buf[..end + 6]).ok()
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ToJSON as _;

    use super::*;

    #[test]
    fn times_are_written_as_chrono_writes_them() {
        let mut buf = [0_u8; RFC3339_MAX];
        for (secs, nanos) in [
            (-62_135_596_800, 0),
            (0, 0),
            (1_767_225_600, 5_000_000),
            (1_767_225_600, 123_456_000),
            (1_767_225_600, 1),
            (253_402_300_799, 999_999_999),
        ] {
            let at = chrono::DateTime::from_timestamp(secs, nanos).unwrap();
            assert_eq!(write_rfc3339(&at, &mut buf), Some(at.to_rfc3339().as_str()));
        }
        // Past year 9999 and in a leap second, chrono writes it.
        let far = chrono::DateTime::from_timestamp(253_402_300_800, 0).unwrap();
        assert_eq!(write_rfc3339(&far, &mut buf), None);
        let leap = chrono::DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap();
        assert_eq!(write_rfc3339(&leap, &mut buf), None);
    }

    #[test]
    fn serde_and_poem_openapi_write_the_same_text() {
        for (secs, nanos) in [(0, 0), (1_767_225_600, 123_456_000), (253_402_300_800, 0)] {
            let at = Timestamp(chrono::DateTime::from_timestamp(secs, nanos).unwrap());
            assert_eq!(serde_json::to_value(at).ok(), at.to_json());
        }
    }
}
