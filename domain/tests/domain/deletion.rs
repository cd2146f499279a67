//! What a delete does to the rows that reference the deleted one (the contract is on
//! `store::soft_delete`): deleting an account unlinks its live people in the same
//! transaction, each as a versioned change a sync walk sees; a deleted person's
//! activities keep their `person_id`.

use chrono::{DateTime, SubsecRound as _, TimeDelta, Utc};
use domain::accounts::{self, AccountCreate, AccountPatch};
use domain::activities::{self, ActivityCreate, ActivityFilter, ActivityKind};
use domain::pagination::{PageRequest, Position};
use domain::people::{self, Person, PersonCreate, PersonFilter, PersonPatch};
use tenancy::TenantDb;
use uuid::Uuid;

use crate::idempotency::is_postgres;
use crate::idempotency::raw::blocked_on_a_row_of;
use crate::support::{World, assert_not_found, assert_version_mismatch, each_backend};

async fn account(db: &TenantDb, name: &str) -> Uuid {
    accounts::create(
        db,
        AccountCreate {
            name: name.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .id
}

async fn person(db: &TenantDb, first_name: &str, account_id: Option<Uuid>) -> Person {
    people::create(
        db,
        PersonCreate {
            account_id,
            first_name: first_name.into(),
            last_name: "Test".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Renames `person` `times` times: a person at a higher version.
async fn edited(db: &TenantDb, person: Person, times: usize) -> Person {
    let mut current = person;
    for n in 0..times {
        let patch = PersonPatch {
            title: Some(Some(format!("Title {n}"))),
            ..Default::default()
        };
        current = people::update(db, current.id, Some(current.version), patch)
            .await
            .unwrap();
    }
    current
}

/// Every person (tombstones included) changed after `after`, in sync order, and where to
/// continue from.
async fn sync_people(db: &TenantDb, after: Option<Position>) -> (Vec<Person>, Option<Position>) {
    let mut seen = Vec::new();
    let mut request = PageRequest::sync(after).limit(7);
    loop {
        let page = people::list(db, &PersonFilter::default(), &request)
            .await
            .unwrap();
        seen.extend(page.items);
        request.after = page.next;
        if !page.has_more {
            return (seen, page.next);
        }
    }
}

/// Every account (tombstones included) changed after `after`, in sync order.
async fn sync_accounts(db: &TenantDb, after: Option<Position>) -> Vec<accounts::Account> {
    let page = accounts::list(
        db,
        &Default::default(),
        &PageRequest::sync(after).limit(200),
    )
    .await
    .unwrap();
    assert!(!page.has_more);
    page.items
}

/// `person` as it must be once unlinked at `at`.
fn unlinked(person: &Person, at: DateTime<Utc>) -> Person {
    Person {
        account_id: None,
        version: person.version + 1,
        updated_at: at,
        ..person.clone()
    }
}

#[tokio::test]
async fn deleting_an_account_unlinks_its_live_people_each_as_a_change_a_sync_walk_sees() {
    each_backend(|w: World| async move {
        let doomed = account(&w.a, "Doomed").await;
        let kept = account(&w.a, "Kept").await;
        // Its people at several versions: each version is a group of the bulk unlink.
        let mut at_doomed = Vec::new();
        for (n, edits) in [0, 0, 1, 2, 2, 5].into_iter().enumerate() {
            let p = person(&w.a, &format!("Doomed{n}"), Some(doomed)).await;
            at_doomed.push(edited(&w.a, p, edits).await);
        }
        let gone = person(&w.a, "Gone", Some(doomed)).await;
        let gone = people::delete(&w.a, gone.id, None).await.unwrap();
        let elsewhere = person(&w.a, "Elsewhere", Some(kept)).await;
        let nowhere = person(&w.a, "Nowhere", None).await;
        // Tenant B, with rows of its own, some at an account.
        let b_account = account(&w.b, "Doomed").await;
        person(&w.b, "Bea", Some(b_account)).await;
        person(&w.b, "Bo", None).await;
        let (b_before, _) = sync_people(&w.b, None).await;
        let b_accounts_before = sync_accounts(&w.b, None).await;
        // Where a syncing client stands before the deletion.
        let (a_before, cursor) = sync_people(&w.a, None).await;
        assert_eq!(a_before.len(), 9);
        let accounts_cursor = sync_accounts(&w.a, None)
            .await
            .last()
            .map(|a| Position::UpdatedAt(a.updated_at, a.id));

        let tombstone = accounts::delete(&w.a, doomed, None).await.unwrap();
        let at = tombstone.deleted_at.unwrap();
        assert_eq!(at, tombstone.updated_at);

        // Unlinked: account_id null, version + 1, updated_at at the deletion; nothing else.
        for before in &at_doomed {
            let now = people::get(&w.a, before.id).await.unwrap();
            assert_eq!(now, unlinked(before, at), "{}", before.first_name);
            assert!(now.updated_at > before.updated_at);
        }
        assert_eq!(people::count_for_account(&w.a, doomed).await.unwrap(), 0);
        // Not theirs: untouched.
        assert_eq!(people::get(&w.a, elsewhere.id).await.unwrap(), elsewhere);
        assert_eq!(people::get(&w.a, nowhere.id).await.unwrap(), nowhere);

        // A sync walk from before the deletion: the account's tombstone, and each unlinked
        // person once, no earlier than the deletion; the deleted person keeps its tombstone.
        let (changed, _) = sync_people(&w.a, cursor).await;
        let expected: Vec<Person> = at_doomed.iter().map(|p| unlinked(p, at)).collect();
        let mut changed_sorted = changed.clone();
        changed_sorted.sort_by_key(|p| p.id);
        assert_eq!(changed_sorted, expected);
        assert!(changed.iter().all(|p| p.updated_at >= at));
        let (all, _) = sync_people(&w.a, None).await;
        assert!(
            all.contains(&gone),
            "a tombstone is the row as it was deleted"
        );
        assert_eq!(gone.account_id, Some(doomed));
        assert_eq!(sync_accounts(&w.a, accounts_cursor).await, [tombstone]);

        // The joined list names no deleted account any more.
        let joined = people::list_with_account_name(
            &w.a,
            &PersonFilter::default(),
            &PageRequest::default().limit(200),
        )
        .await
        .unwrap();
        assert_eq!(joined.items.len(), 8);
        for row in &joined.items {
            assert_eq!(
                row.person.account_id.is_some(),
                row.account_name.is_some(),
                "{row:?}"
            );
        }

        // Tenant B: nothing read, nothing written.
        assert_eq!(sync_people(&w.b, None).await.0, b_before);
        assert_eq!(sync_accounts(&w.b, None).await, b_accounts_before);
    })
    .await;
}

#[tokio::test]
async fn an_account_delete_that_fails_or_is_rolled_back_unlinks_nobody() {
    each_backend(|w: World| async move {
        let acme = account(&w.a, "Acme").await;
        let ada = person(&w.a, "Ada", Some(acme)).await;
        let grace = edited(&w.a, person(&w.a, "Grace", Some(acme)).await, 1).await;
        let patch = AccountPatch {
            name: Some("Acme Corp".into()),
            ..Default::default()
        };
        accounts::update(&w.a, acme, Some(1), patch).await.unwrap();

        // A stale If-Match: the account stays, and so do its people's links.
        assert_version_mismatch(accounts::delete(&w.a, acme, Some(1)).await, 1, 2);
        assert_eq!(people::get(&w.a, ada.id).await.unwrap(), ada);
        assert_eq!(people::get(&w.a, grace.id).await.unwrap(), grace);

        // Another tenant cannot delete it, nor touch its people.
        assert_not_found(accounts::delete(&w.b, acme, None).await, None);
        assert_eq!(people::get(&w.a, ada.id).await.unwrap(), ada);

        // Inside a caller's transaction that is dropped: all of it rolls back.
        let txn = w.a.begin().await.unwrap();
        accounts::delete(&txn, acme, Some(2)).await.unwrap();
        assert_eq!(people::get(&txn, ada.id).await.unwrap().account_id, None);
        drop(txn);
        assert_eq!(accounts::get(&w.a, acme).await.unwrap().version, 2);
        assert_eq!(people::get(&w.a, ada.id).await.unwrap(), ada);
        assert_eq!(people::get(&w.a, grace.id).await.unwrap(), grace);

        // Committed: both unlinked.
        accounts::delete(&w.a, acme, Some(2)).await.unwrap();
        for p in [&ada, &grace] {
            let now = people::get(&w.a, p.id).await.unwrap();
            assert_eq!((now.account_id, now.version), (None, p.version + 1));
        }
    })
    .await;
}

#[tokio::test]
async fn a_person_changed_at_or_after_the_deletion_instant_still_moves_strictly_forwards() {
    each_backend(|w: World| async move {
        let acme = account(&w.a, "Acme").await;
        let ahead = person(&w.a, "Ahead", Some(acme)).await;
        let behind = person(&w.a, "Behind", Some(acme)).await;
        // A change stamped by a server whose clock runs an hour ahead of this one.
        let future = (Utc::now() + TimeDelta::hours(1)).trunc_subsecs(6);
        raw::set_updated_at(&w, ahead.id, future).await;
        let ahead = people::get(&w.a, ahead.id).await.unwrap();
        assert_eq!(ahead.updated_at, future);

        let tombstone = accounts::delete(&w.a, acme, None).await.unwrap();
        let at = tombstone.deleted_at.unwrap();
        assert!(at < future);
        assert_eq!(
            people::get(&w.a, ahead.id).await.unwrap(),
            unlinked(&ahead, future + TimeDelta::microseconds(1)),
            "moved past its own updated_at, not back to the deletion"
        );
        assert_eq!(
            people::get(&w.a, behind.id).await.unwrap(),
            unlinked(&behind, at)
        );
    })
    .await;
}

#[tokio::test]
async fn an_account_with_hundreds_of_people_is_unlinked_whole() {
    each_backend(|w: World| async move {
        let big = account(&w.a, "Big").await;
        let txn = w.a.begin().await.unwrap();
        let mut ids = Vec::new();
        for n in 0..450 {
            let p = people::create(
                &txn,
                PersonCreate {
                    account_id: Some(big),
                    first_name: format!("P{n}"),
                    last_name: "Test".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            ids.push(p.id);
        }
        txn.commit().await.unwrap();
        assert_eq!(people::count_for_account(&w.a, big).await.unwrap(), 450);
        let tombstone = accounts::delete(&w.a, big, None).await.unwrap();
        assert_eq!(people::count_for_account(&w.a, big).await.unwrap(), 0);
        let (changed, _) = sync_people(
            &w.a,
            Some(Position::UpdatedAt(
                tombstone.updated_at - TimeDelta::microseconds(1),
                Uuid::max(),
            )),
        )
        .await;
        assert_eq!(changed.len(), 450);
        assert!(
            changed
                .iter()
                .all(|p| (p.account_id, p.version, p.updated_at) == (None, 2, tombstone.updated_at))
        );
    })
    .await;
}

#[tokio::test]
async fn a_deleted_persons_activities_keep_their_person_and_leave_the_feed() {
    each_backend(|w: World| async move {
        let ada = person(&w.a, "Ada", None).await;
        let call = activities::create(
            &w.a,
            ActivityCreate {
                person_id: ada.id,
                user_id: Some(w.a_admin.id),
                kind: ActivityKind::Call,
                subject: "Intro call".into(),
                body: None,
                occurred_at: None,
            },
        )
        .await
        .unwrap();
        people::delete(&w.a, ada.id, None).await.unwrap();

        // The activity is unchanged: same person id, same version (no sync noise).
        assert_eq!(activities::get(&w.a, call.id).await.unwrap(), call);
        let listed = activities::list(&w.a, &ActivityFilter::default(), &PageRequest::default())
            .await
            .unwrap();
        assert_eq!(listed.items, [call]);
        // Its person is a tombstone: a 404 by id, in sync lists as deleted.
        assert_not_found(people::get(&w.a, ada.id).await, None);
        let (synced, _) = sync_people(&w.a, None).await;
        assert!(
            synced
                .iter()
                .any(|p| p.id == ada.id && p.deleted_at.is_some())
        );
        // The feed joins live people only.
        let feed = activities::feed(&w.a, &ActivityFilter::default(), None, 50)
            .await
            .unwrap();
        assert!(feed.items.is_empty());
    })
    .await;
}

#[expect(
    clippy::disallowed_types,
    reason = "tests only: the raw test connection, to stamp a row as a server with a clock ahead would"
)]
mod raw {
    use chrono::{DateTime, Utc};
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    use uuid::Uuid;

    use crate::support::World;

    /// Sets person `id`'s `updated_at`, behind the domain's back.
    pub async fn set_updated_at(w: &World, id: Uuid, at: DateTime<Utc>) {
        let backend = w.test.raw.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => "UPDATE people SET updated_at = $1 WHERE id = $2",
            _ => "UPDATE people SET updated_at = ? WHERE id = ?",
        };
        let values: [sea_orm::Value; 2] = [at.into(), id.into()];
        let done = w
            .test
            .raw
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1);
    }
}

/// A person written while their account is being deleted never ends up pointing at the
/// tombstone: the write reads the account `FOR SHARE`, so on PostgreSQL either the
/// deletion waits for the write and then unlinks the new person, or the write waits for
/// the deletion and then finds no account. (SQLite runs write transactions one at a time;
/// the same sequence runs there without the overlap.)
#[tokio::test]
async fn a_person_written_while_their_account_is_deleted_is_unlinked_or_refused() {
    each_backend(|w| async move {
        let postgres = is_postgres(&w);
        let new_person = |account_id| PersonCreate {
            account_id: Some(account_id),
            first_name: "Racing".into(),
            last_name: "Test".into(),
            ..Default::default()
        };

        // The write first: its transaction holds the account while the deletion starts.
        let first = account(&w.a, "Written first").await;
        let txn = w.a.begin().await.unwrap();
        let created = people::create(&txn, new_person(first)).await.unwrap();
        // PostgreSQL: the commit waits until the deletion is blocked on the account — or
        // has finished, which only a missing lock allows (and the check below catches).
        let done = tokio::sync::Notify::new();
        let (deleted, ()) = tokio::join!(
            async {
                let deleted = accounts::delete(&w.a, first, None).await;
                done.notify_one();
                deleted
            },
            async {
                if postgres {
                    tokio::select! {
                        _ = blocked_on_a_row_of(&w.test.raw, "accounts") => {}
                        () = done.notified() => {}
                    }
                }
                txn.commit().await.unwrap();
            }
        );
        deleted.unwrap();
        let after = people::get(&w.a, created.id).await.unwrap();
        assert_eq!(after.account_id, None, "{after:?}");
        assert_eq!(after.version, 2);

        // The deletion first: the write waits for it, then finds no live account.
        let second = account(&w.a, "Deleted first").await;
        let txn = w.a.begin().await.unwrap();
        accounts::delete(&txn, second, None).await.unwrap();
        let done = tokio::sync::Notify::new();
        let (written, ()) = tokio::join!(
            async {
                // SQLite: the writer turn makes the write wait for the deletion's commit.
                let written = people::create(&w.a, new_person(second)).await;
                done.notify_one();
                written
            },
            async {
                if postgres {
                    tokio::select! {
                        _ = blocked_on_a_row_of(&w.test.raw, "accounts") => {}
                        () = done.notified() => {}
                    }
                }
                txn.commit().await.unwrap();
            }
        );
        assert!(
            matches!(
                written,
                Err(domain::Error::NotFound {
                    field: Some("account_id"),
                    ..
                })
            ),
            "{written:?}"
        );
        let linked = people::list(
            &w.a,
            &PersonFilter {
                account_id: Some(second),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await
        .unwrap();
        assert!(linked.items.is_empty(), "{:?}", linked.items);
    })
    .await;
}
