//! Idempotency keys: a POST retried with the same `Idempotency-Key` gets the first
//! response again instead of acting twice.
//!
//! Keys are scoped to the tenant *and* the credential that sent them, so two
//! integrations of one tenant can never collide. The life of a key:
//! [`begin`] claims it (→ [`Begin::New`]); the API runs the request and stores the
//! response with [`complete`] — or, when the request failed before producing a response
//! worth replaying, releases the key with [`abandon`] so a retry can run. Until then,
//! a concurrent retry sees [`Begin::InProgress`]. After the TTL the key is free again.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tenancy::{ColumnExt, Set, TenantDb, TenantHandle};

use crate::entity::idempotency_key::{self, Column};
use crate::error::{Error, Resource, Result};
use crate::time;
use crate::types::{Check, Invalid};

/// What [`begin`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key was free and is now claimed: run the request, then [`complete`] it.
    New,
    /// The key was used for the same request, which finished: send this response again.
    Replay {
        /// The stored status code.
        status: u16,
        /// The stored response body.
        body: String,
    },
    /// The key was used for a different request (another body or endpoint).
    Mismatch,
    /// The same request is still running (a concurrent retry).
    InProgress,
}

/// How many times [`begin`] re-reads when it loses a race for the same key. Losing every
/// time means other requests keep claiming it: reported as [`Begin::InProgress`].
const ATTEMPTS: usize = 3;

fn text(raw: &str, max: usize) -> Result<(), Invalid> {
    if raw.is_empty() || raw.len() > max || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        Err(Invalid::new(
            "invalid_format",
            format!("must be 1 to {max} printable ASCII characters"),
        ))
    } else {
        Ok(())
    }
}

fn check_inputs(credential_id: &str, key: &str, request_hash: Option<&str>) -> Result<()> {
    let mut check = Check::default();
    check.field("credential_id", text(credential_id, 255));
    check.field("idempotency_key", text(key, 255));
    if let Some(hash) = request_hash {
        check.field("request_hash", text(hash, 255));
    }
    check.finish()
}

fn classify(row: idempotency_key::Model, request_hash: &str) -> Begin {
    if row.request_hash != request_hash {
        return Begin::Mismatch;
    }
    match row.response_status {
        None => Begin::InProgress,
        Some(status) => Begin::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body: row.response_body.unwrap_or_default(),
        },
    }
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + TimeDelta::from_std(ttl).unwrap_or(TimeDelta::days(1))
}

/// Claims `key` for the request whose canonical hash is `request_hash`, or reports what
/// earlier use of the key there was. An expired key is taken over as if new.
///
/// Takes the pool handle, not a transaction: a lost insert race is detected by the
/// unique violation, which would abort an enclosing PostgreSQL transaction.
///
/// # Errors
/// `Validation` for an empty or over-long `credential_id`, key or hash.
pub async fn begin(
    db: &TenantDb,
    credential_id: &str,
    key: &str,
    request_hash: &str,
    ttl: Duration,
) -> Result<Begin> {
    check_inputs(credential_id, key, Some(request_hash))?;
    for _ in 0..ATTEMPTS {
        let now = time::now();
        let existing = db
            .find::<idempotency_key::Entity>()
            .filter(Column::CredentialId.eq(credential_id))
            .filter(Column::Key.eq(key))
            .one()
            .await?;
        match existing {
            None => {
                let inserted = db
                    .insert(idempotency_key::ActiveModel {
                        credential_id: Set(credential_id.to_owned()),
                        key: Set(key.to_owned()),
                        request_hash: Set(request_hash.to_owned()),
                        response_status: Set(None),
                        response_body: Set(None),
                        created_at: Set(now),
                        expires_at: Set(expiry(now, ttl)),
                        ..Default::default()
                    })
                    .exec()
                    .await;
                match inserted {
                    Ok(_) => return Ok(Begin::New),
                    // A concurrent request claimed it first: read what it stored.
                    Err(tenancy::Error::UniqueViolation(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Some(row) if row.expires_at <= now => {
                // Take the expired key over; the guard on its old expiry lets exactly
                // one of several concurrent requests win.
                let taken = db
                    .update_many::<idempotency_key::Entity>()
                    .set(Column::RequestHash, request_hash)
                    .set(Column::ResponseStatus, Option::<i32>::None)
                    .set(Column::ResponseBody, Option::<String>::None)
                    .set(Column::CreatedAt, now)
                    .set(Column::ExpiresAt, expiry(now, ttl))
                    .filter(Column::CredentialId.eq(credential_id))
                    .filter(Column::Key.eq(key))
                    .filter(Column::ExpiresAt.eq(row.expires_at))
                    .exec()
                    .await?;
                if taken == 1 {
                    return Ok(Begin::New);
                }
            }
            Some(row) => return Ok(classify(row, request_hash)),
        }
    }
    Ok(Begin::InProgress)
}

/// Stores the response of the request that claimed `key`, for replays.
///
/// # Errors
/// `NotFound` when the key is not claimed and unfinished (never begun, already
/// completed, or abandoned).
pub async fn complete(
    db: &impl TenantHandle,
    credential_id: &str,
    key: &str,
    status: u16,
    body: &str,
) -> Result<()> {
    check_inputs(credential_id, key, None)?;
    let stored = db
        .update_many::<idempotency_key::Entity>()
        .set(Column::ResponseStatus, i32::from(status))
        .set(Column::ResponseBody, body)
        .filter(Column::CredentialId.eq(credential_id))
        .filter(Column::Key.eq(key))
        .filter(Column::ResponseStatus.is_null())
        .exec()
        .await?;
    if stored == 0 {
        return Err(Error::not_found(Resource::IdempotencyKey));
    }
    Ok(())
}

/// Releases a claimed, unfinished `key` (the request failed without a response worth
/// replaying), so a retry runs again instead of getting `InProgress` until expiry.
/// Releasing a finished or unknown key does nothing.
///
/// # Errors
/// Storage failures only.
pub async fn abandon(db: &impl TenantHandle, credential_id: &str, key: &str) -> Result<()> {
    check_inputs(credential_id, key, None)?;
    db.delete_many::<idempotency_key::Entity>()
        .filter(Column::CredentialId.eq(credential_id))
        .filter(Column::Key.eq(key))
        .filter(Column::ResponseStatus.is_null())
        .exec()
        .await?;
    Ok(())
}

/// Deletes the tenant's expired keys (for a periodic job); returns how many.
///
/// # Errors
/// Storage failures only.
pub async fn purge_expired(db: &impl TenantHandle) -> Result<u64> {
    Ok(db
        .delete_many::<idempotency_key::Entity>()
        .filter(Column::ExpiresAt.lt(time::now()))
        .exec()
        .await?)
}
