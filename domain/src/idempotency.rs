//! Idempotency keys: a POST retried with the same `Idempotency-Key` gets the first
//! response again instead of acting twice.
//!
//! Keys are scoped to the tenant *and* the credential that sent them, so two
//! integrations of one tenant can never collide.
//!
//! ## One transaction
//! [`once`] claims the key, runs the write and stores its response in ONE database
//! transaction, and reports success only when that transaction's commit did. A crash, a
//! dropped request, a killed connection or a failed commit at any point leaves either
//! nothing (the key is free: a retry runs) or everything (the row, the claim and the
//! response: a retry replays). No key is ever left "in progress", and no row is ever
//! written without the response that replays it.
//!
//! ## Concurrent requests with one key: the second waits, then replays
//! The claim is the transaction's first statement, so the transaction holds the key
//! before it writes anything. On PostgreSQL, a second request inserting the same key
//! blocks on the primary-key index until the first transaction ends: if it committed,
//! the second gets a unique violation, rolls back and replays the stored response; if it
//! rolled back (an error, a cancelled request, a lost connection), the second's claim goes
//! through and it runs. The second waits and replays; it never outlives the owner —
//! whatever ends the owner's transaction ends the wait. On SQLite, transactions begin
//! `IMMEDIATE` (see `tenancy`'s `TenantDb::begin`): the second waits for the writer lock
//! (under the busy timeout), then finds the key committed or free. So a concurrent retry
//! is never refused as "in progress"; a wait longer than the database's lock timeout is
//! a storage error (503), not a second write.
//!
//! ## Only creates take a key
//! `PATCH` and `DELETE` take no `Idempotency-Key`: they are safe to retry by their own
//! semantics. A `PATCH` sent with `If-Match` applies at most once — a retry after it
//! applied names a version that is no longer current and changes nothing (412; the client
//! re-reads and finds its change). A `DELETE` leaves the row deleted however often it is
//! sent (a repeat finds nothing live: 404), so its effect is the same.
//!
//! ## Upgrading from the three-commit protocol
//! Earlier versions claimed a key, wrote and stored the response in three commits, so a
//! crash could leave a claim without a response (`response_status` NULL) for the whole
//! TTL. [`once`] never commits such a row; it treats one as abandoned: removes it and
//! claims the key anew.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tenancy::{ColumnExt, Cond, Set, TenantDb, TenantHandle, TenantTxn};

use crate::entity::idempotency_key::{self, Column};
use crate::error::{Error, Resource, Result};
use crate::store::{self, Writer};
use crate::time;
use crate::types::{Check, Invalid};

/// A request's claim on an idempotency key, for [`once`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim<'a> {
    /// The credential that sent the request (`api_key:<id>`, `jwt:user:<id>`, …): each
    /// has its own keys. 1 to 255 printable ASCII characters.
    pub credential_id: &'a str,
    /// The `Idempotency-Key`: 1 to 255 printable ASCII characters.
    pub key: &'a str,
    /// A fingerprint of the request (operation and canonical body): a key seen with
    /// another fingerprint is refused ([`Error::IdempotencyKeyReused`]).
    pub request_hash: &'a str,
    /// How long the response is replayed; after that the key is free again.
    pub ttl: Duration,
}

/// A response stored with its key, replayed to retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// What [`once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Once<T> {
    /// The write ran and committed (with its claim and stored response, under a key).
    Ran(T),
    /// An earlier request with the same key and fingerprint committed: its response.
    Replayed(Stored),
}

/// How many times [`once`] tries to claim a key that it finds taken but free to take
/// (released by its owner, expired, or a leftover claim without a response) before it
/// reports [`Error::Contention`].
const ATTEMPTS: usize = 5;

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

fn check_claim(claim: &Claim<'_>) -> Result<()> {
    let mut check = Check::default();
    check.field("credential_id", text(claim.credential_id, 255));
    check.field("idempotency_key", text(claim.key, 255));
    check.field("request_hash", text(claim.request_hash, 255));
    check.finish()
}

fn expiry(now: DateTime<Utc>, ttl: Duration) -> DateTime<Utc> {
    now + TimeDelta::from_std(ttl).unwrap_or(TimeDelta::days(1))
}

/// Runs the write `run` at most once per key: `run`, the claim of the key and the
/// response `response` makes of `run`'s result are committed together, in one
/// transaction, or not at all.
///
/// With a `claim`, the transaction first inserts the key's row (taking the key before it
/// writes anything), then runs `run` on the same transaction, stores `response(&value)`
/// in the row, and commits. When the key is already taken:
/// - by a committed request with the same `request_hash`: [`Once::Replayed`] with its
///   stored response, and `run` does not run;
/// - by one with another `request_hash`: [`Error::IdempotencyKeyReused`];
/// - by a request still running: this call waits for it to end, then replays or runs
///   (see the module docs);
/// - by an expired key, or a claim left without a response by the earlier three-commit
///   protocol: the row is removed and the key claimed anew.
///
/// Errors are not stored: when `run` fails, nothing is written and the key stays free,
/// so the client can fix the request and retry with the same key.
///
/// Without a `claim`, `run` runs in a transaction of its own ([`Writer::write`]).
/// Either way, `Ok` means the commit succeeded: the write is durable.
///
/// # Errors
/// `Validation` for an empty or over-long credential, key or hash;
/// [`Error::IdempotencyKeyReused`]; [`Error::Contention`] when the key kept being taken
/// and released by others; `run`'s own errors; storage errors, the commit's included.
pub async fn once<T>(
    db: &TenantDb,
    claim: Option<Claim<'_>>,
    run: impl AsyncFnOnce(&TenantTxn) -> Result<T>,
    response: impl FnOnce(&T) -> Stored,
) -> Result<Once<T>> {
    let Some(claim) = claim else {
        return db.write(run).await.map(Once::Ran);
    };
    check_claim(&claim)?;
    let txn = match take(db, &claim).await? {
        Taken::Claimed(txn) => txn,
        Taken::Replay(stored) => return Ok(Once::Replayed(stored)),
    };
    let value = match run(&txn).await {
        Ok(value) => value,
        Err(error) => {
            store::rollback(txn).await;
            return Err(error);
        }
    };
    let Stored { status, body } = response(&value);
    let saved = txn
        .update_many::<idempotency_key::Entity>()
        .set(Column::ResponseStatus, i32::from(status))
        .set(Column::ResponseBody, body)
        .filter(Column::CredentialId.eq(claim.credential_id))
        .filter(Column::Key.eq(claim.key))
        .exec()
        .await?;
    if saved != 1 {
        store::rollback(txn).await;
        return Err(Error::Corrupt {
            resource: Resource::IdempotencyKey,
            detail: "the claim vanished inside its own transaction".to_owned(),
        });
    }
    txn.commit().await?;
    Ok(Once::Ran(value))
}

/// What [`take`] got.
enum Taken {
    /// The key's row is inserted in this (open) transaction.
    Claimed(TenantTxn),
    /// A committed request with the same fingerprint holds the key.
    Replay(Stored),
}

/// Opens the transaction of [`once`] with the key's row as its first write, or reports
/// the committed request that holds the key.
async fn take(db: &TenantDb, claim: &Claim<'_>) -> Result<Taken> {
    for _ in 0..ATTEMPTS {
        let txn = db.begin().await?;
        let now = time::now();
        let inserted = txn
            .insert(idempotency_key::ActiveModel {
                credential_id: Set(claim.credential_id.to_owned()),
                key: Set(claim.key.to_owned()),
                request_hash: Set(claim.request_hash.to_owned()),
                response_status: Set(None),
                response_body: Set(None),
                created_at: Set(now),
                expires_at: Set(expiry(now, claim.ttl)),
                ..Default::default()
            })
            .exec()
            .await;
        match inserted {
            Ok(_) => return Ok(Taken::Claimed(txn)),
            // Taken by a committed request (on PostgreSQL the insert waited for it to
            // end). The failed insert aborted a PostgreSQL transaction: end it, and read
            // what that request stored outside it.
            Err(tenancy::Error::UniqueViolation(_)) => store::rollback(txn).await,
            Err(other) => return Err(other.into()),
        }
        let Some(row) = db
            .find::<idempotency_key::Entity>()
            .filter(Column::CredentialId.eq(claim.credential_id))
            .filter(Column::Key.eq(claim.key))
            .one()
            .await?
        else {
            continue; // Purged since: free again.
        };
        if row.expires_at <= time::now() {
            // Expired: remove it and claim the key anew. The guard on its expiry lets a
            // concurrent request's fresh claim stand.
            release(db, claim, Column::ExpiresAt.eq(row.expires_at)).await?;
            continue;
        }
        let Some(status) = row.response_status else {
            // Committed without a response: a leftover of the three-commit protocol.
            release(db, claim, Column::ResponseStatus.is_null()).await?;
            continue;
        };
        if row.request_hash != claim.request_hash {
            return Err(Error::IdempotencyKeyReused);
        }
        return Ok(Taken::Replay(Stored {
            status: u16::try_from(status).unwrap_or(500),
            body: row.response_body.unwrap_or_default(),
        }));
    }
    Err(Error::Contention {
        resource: Resource::IdempotencyKey,
    })
}

/// Deletes the key's row if it still matches `guard`.
async fn release(db: &TenantDb, claim: &Claim<'_>, guard: Cond<Column>) -> Result<()> {
    db.write(async |txn| {
        txn.delete_many::<idempotency_key::Entity>()
            .filter(Column::CredentialId.eq(claim.credential_id))
            .filter(Column::Key.eq(claim.key))
            .filter(guard)
            .exec()
            .await?;
        Ok(())
    })
    .await
}

/// Deletes the tenant's expired keys (for a periodic job); returns how many.
///
/// # Errors
/// Storage failures only.
pub async fn purge_expired(db: &impl Writer) -> Result<u64> {
    db.write(async |db| {
        Ok(db
            .delete_many::<idempotency_key::Entity>()
            .filter(Column::ExpiresAt.lt(time::now()))
            .exec()
            .await?)
    })
    .await
}
