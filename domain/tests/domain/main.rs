//! The domain on real databases: every operation, its validation, its version checks and
//! its tenant isolation, on SQLite and (with `DATABASE_URL`) PostgreSQL, each test on a
//! fresh, migrated database so they run in parallel.

#![expect(
    clippy::unwrap_used,
    reason = "in a test, a failed unwrap is a failed test that prints the error"
)]

mod support;

mod accounts;
mod activities;
mod deletion;
mod idempotency;
mod identity;
mod pagination;
mod people;
mod tenant_lookup;
