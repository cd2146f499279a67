//! The crate's one error type.

use std::time::Duration;

/// What can go wrong. Decisions themselves never fail (Redis trouble falls back); these
/// come from configuration and from [`crate::Limiter::connect`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A policy or policy set that cannot be enforced as given.
    #[error("invalid rate-limit policy: {0}")]
    InvalidPolicy(String),
    /// A limiter configuration that cannot work.
    #[error("invalid rate-limit configuration: {0}")]
    InvalidConfig(String),
    /// Redis refused, or the connection failed.
    #[error("Redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// Redis did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The script answered something this crate does not understand (a different script
    /// under the same hash, or a proxy in the way).
    #[error("unexpected reply from the rate-limit script")]
    Protocol,
}
