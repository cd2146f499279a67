//! # ratelimit — cost-weighted rate limits per tenant and per credential
//!
//! Knows nothing of HTTP frameworks: callers hand it a [`Key`] and a cost, and get back a
//! [`Decision`] with everything a response needs (admitted or not, what is left, when to
//! retry, which policy refused, and the header values).
//!
//! ## The rules
//! 1. **GCRA, with the cost as the quantity.** A policy admits `quota` cost units per
//!    `window`, refilled continuously (one unit every `window / quota`), with bursts up to
//!    the whole quota. A request of cost 5 uses 5 units. The arithmetic is integer-exact: a
//!    fresh key admits exactly `quota` units, never one more (`gcra.rs` explains the units).
//! 2. **Two policies, evaluated together.** An authenticated request is held to its
//!    tenant's budget *and*, inside it, a smaller budget for its credential (API key or
//!    token client), so one integration cannot exhaust its tenant. It is admitted only if
//!    both admit it, and a refused request consumes nothing from either.
//! 3. **Unauthenticated requests are keyed per client IP** (IPv6 per /64; an IPv4-mapped
//!    IPv6 address as its IPv4 address) under a third policy.
//! 4. **A refusal names the violated policy** — of those that refused, the one with the
//!    longest wait — and says when the same cost would be admitted ([`Decision::retry_after`]).
//! 5. **Work that turned out cheaper is refunded** ([`Limiter::refund`]): a caller charges
//!    an operation's declared cost up front and gives back what a 304 or an empty page did
//!    not use.
//! 6. **Redis when configured, fail-open.** The Redis backend runs one Lua script per
//!    decision — one round trip, atomic over both policies, keys sharing a hash tag per
//!    tenant (`rl:{t:tenant}:t`, `rl:{t:tenant}:c:<credential>`) so they sit in one Redis
//!    Cluster slot, each key expiring when its budget is full again. When Redis errs or misses a
//!    short deadline (50 ms by default), the in-process backend decides instead; the
//!    fallback is logged and counted ([`Limiter::stats`]), and Redis is probed again after
//!    a backoff until it answers. A Redis Cluster works the same way: give
//!    [`RedisConfig::new`] its node URLs separated by commas; each decision goes to the one
//!    master that owns its tenant's slot.
//! 7. **Time is injectable.** The in-process backend reads a [`Clock`]; Redis reads its own
//!    `TIME` (one clock for every API instance) unless the limiter was built with a clock,
//!    which it then passes in — so tests drive refill on both backends without sleeping.
//!
//! ## Headers (draft-ietf-httpapi-ratelimit-headers, draft 11)
//! ```text
//! RateLimit-Policy: "tenant";q=600;w=60, "credential";q=120;w=60
//! RateLimit: "tenant";r=583;t=2, "credential";r=17;t=41
//! Retry-After: 4
//! ```
//! See [`headers`] for the exact syntax, and [`headers::QUOTA_EXCEEDED_TYPE`] for the
//! problem type of a refusal.
//!
//! ## Layout
//! - [`Policy`], [`Policies`], [`Key`] (`policy`): what is limited, and by whom.
//! - [`Decision`], [`PolicyStatus`], [`Source`] (`decision`): the answer and its headers.
//! - [`headers`]: field names and the structured-field serialization.
//! - [`Clock`], [`SystemClock`], [`ManualClock`] (`clock`): time.
//! - [`Limiter`], [`LimiterBuilder`], [`RedisConfig`], [`Stats`] (`limiter`): the front and
//!   its circuit breaker.
//! - `gcra` (the arithmetic), `memory` (sharded in-process store, keyed by the [`Key`]'s
//!   parts: no string is built per decision), `redis_backend` + `gcra.lua` (the script):
//!   the backends, private.
//! - [`Error`]: the crate's one error type.
//!
//! ## Example
//! ```
//! # async fn demo() -> Result<(), ratelimit::Error> {
//! use std::time::Duration;
//! use ratelimit::{Key, Limiter, Policies, Policy};
//!
//! let minute = Duration::from_secs(60);
//! let policies = Policies::new(
//!     Policy::new("tenant", 600, minute)?,
//!     Policy::new("credential", 120, minute)?,
//!     Policy::new("ip", 60, minute)?,
//! )?;
//! let limiter = Limiter::in_memory(policies);
//! let decision = limiter.check(&Key::Credential { tenant: "t1", credential: "key_1" }, 5).await;
//! assert!(decision.allowed());
//! assert_eq!(decision.ratelimit_header(), r#""tenant";r=595;t=1, "credential";r=115;t=3"#);
//! # Ok(()) }
//! ```

mod clock;
mod decision;
mod error;
mod gcra;
pub mod headers;
mod limiter;
mod memory;
mod policy;
mod redis_backend;

pub use clock::{Clock, ManualClock, SystemClock};
pub use decision::{Decision, PolicyStatus, Source};
pub use error::Error;
pub use limiter::{Limiter, LimiterBuilder, RedisConfig, Stats};
pub use policy::{Key, Policies, Policy};
