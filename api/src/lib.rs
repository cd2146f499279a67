//! # api — Tenantry's public REST API (the `tenantry` binary)
//!
//! poem + poem-openapi over the `domain` crate. Handlers are thin: extract → verified
//! principal (with the operation's scope) → tenant handle → one domain call → DTO. This
//! crate never builds a query; the tenant of every request comes from its credential.
//!
//! ## Layout
//! - [`settings`]: typed configuration from the environment (secrets redacted).
//! - [`auth`]: JWT and API-key verification, scopes, the `bearer` security scheme.
//! - [`problem`]: RFC 9457 problem details; `domain::Error` and every poem error mapped
//!   once, at the edge.
//! - [`context`]: each operation's descriptor (id, scope, price) and the prologue every
//!   handler starts with — the only way a handler gets a tenant handle.
//! - [`cursor`]: signed, filter-bound pagination cursors.
//! - [`http`]: the JSON body extractor, ETags, preconditions, idempotent creates.
//! - [`middleware`]: request ids, access logs, timeouts, metrics, problem rendering (with
//!   CORS and compression from poem).
//! - [`front`]: the front door — credential, scope and rate limit before the body is read.
//! - [`admission`]: the body read under a deadline, then fair slots per tenant, credential
//!   and client address.
//! - [`limits`]: rate limits — each operation's cost, what a request was charged, the
//!   `RateLimit*` headers.
//! - [`v1`]: the operations and their DTOs, one module per context.
//! - [`openapi`]: the generated spec (served at `/openapi.json`, committed as
//!   `openapi/openapi.json`) and the docs page (`/docs`).
//! - [`server`]: routes, middleware order, serving with graceful shutdown.
//! - [`bootstrap`]: connect, migrate, demo tenant.
//! - [`storage`]: the SQLite disk's reserve (writes paused with 507 before it is full).
//! - [`state`], [`metrics`]: shared server state and Prometheus metrics.
//!
//! ## Rules
//! 1. A `TenantCtx` is made only in [`auth`], from a verified credential.
//! 2. Another tenant's resource is a 404, exactly like a missing one (the domain cannot
//!    tell them apart either).
//! 3. Every error response is `application/problem+json`, including poem-openapi's own
//!    parse and auth errors, unknown routes, 405, 413 and timeouts.
//! 4. DTOs (`Object`) are separate from domain types; optional response fields are
//!    always present and `nullable` (one convention, checked by a test) — but in the
//!    partial representations `fields` and `expand` shape ([`v1::shape`]), served under a
//!    media type of their own whose schemas say so.
//! 5. Each operation declares its scope in the spec and checks the same scope.
//! 6. Each operation declares its cost next to its handler; the front door charges it
//!    before the body is read, and the handler takes the charge over after its scope check.

// `Problem` (~150 bytes) is the error of most internal helpers. It is built only on the
// failure path of a request, next to a database round trip; boxing it everywhere would
// add noise for no measurable gain. (`ApiError`, what handlers return, is boxed.)
#![expect(clippy::result_large_err, reason = "see the comment above")]

pub mod admission;
pub mod auth;
pub mod bootstrap;
pub mod context;
pub mod cursor;
pub mod front;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod problem;
pub mod server;
pub mod settings;
pub mod state;
pub mod storage;
pub mod timestamp;
pub mod v1;

pub use settings::Settings;
pub use state::AppState;
