//! The API's integration tests: one binary, the real server on port 0 against a fresh
//! database per test — SQLite always, PostgreSQL too when `DATABASE_URL` is set
//! (`tenancy::testing::backends()`). Tests run in parallel; none sleeps to synchronize.

#[path = "api/support.rs"]
mod support;
// The fault suite's own-Redis helper (api/tests/faults.rs uses it too); this binary needs
// only part of it.
#[expect(
    dead_code,
    reason = "shared with the faults binary, which uses all of it"
)]
#[path = "faults/redis.rs"]
mod own_redis;

#[path = "api/accounts.rs"]
mod accounts;
#[path = "api/activities.rs"]
mod activities;
#[path = "api/api_keys.rs"]
mod api_keys;
#[path = "api/attacks.rs"]
mod attacks;
#[path = "api/conditional.rs"]
mod conditional;
#[path = "api/coverage.rs"]
mod coverage;
#[path = "api/hostile.rs"]
mod hostile;
#[path = "api/nul.rs"]
mod nul;
#[path = "api/pagination.rs"]
mod pagination;
#[path = "api/people.rs"]
mod people;
#[path = "api/problems.rs"]
mod problems;
#[path = "api/rate_limits.rs"]
mod rate_limits;
#[path = "api/shapes.rs"]
mod shapes;
#[path = "api/snapshots.rs"]
mod snapshots;
#[path = "api/spec.rs"]
mod spec;
#[path = "api/system.rs"]
mod system;
