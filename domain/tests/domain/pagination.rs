use domain::accounts::{self, AccountCreate, AccountFilter, AccountPatch};
use domain::activities::{self, ActivityFilter};
use domain::identity;
use domain::pagination::{OffsetRequest, PageRequest, Position, SortKey};
use domain::people::{self, Person, PersonCreate, PersonFilter, PersonPatch, Stage};
use tenancy::TenantDb;
use uuid::Uuid;

use crate::support::{each_backend, invalid_fields};

async fn new_account(db: &TenantDb, i: usize) -> accounts::Account {
    accounts::create(
        db,
        AccountCreate {
            name: format!("Account {i}"),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn new_person(db: &TenantDb, i: usize) -> Person {
    let input = PersonCreate {
        first_name: format!("P{i}"),
        last_name: "Doe".into(),
        ..Default::default()
    };
    people::create(db, input).await.unwrap()
}

/// Walks a people sync list from `after` to its end; returns the rows and the final cursor.
async fn sync_people(
    db: &TenantDb,
    mut after: Option<Position>,
    limit: u64,
) -> (Vec<Person>, Option<Position>) {
    let mut seen = Vec::new();
    loop {
        let page = people::list(
            db,
            &PersonFilter::default(),
            &PageRequest::sync(after).limit(limit),
        )
        .await
        .unwrap();
        assert!(page.items.len() as u64 <= limit);
        seen.extend(page.items);
        after = page.next;
        if !page.has_more {
            return (seen, after);
        }
    }
}

#[tokio::test]
async fn a_keyset_walk_by_id_visits_every_row_once_in_id_order() {
    each_backend(|w| async move {
        let mut expected = Vec::new();
        for i in 0..23 {
            expected.push(new_account(&w.a, i).await.id);
            if i % 4 == 0 {
                new_account(&w.b, i).await;
            }
        }
        expected.sort();
        let mut seen = Vec::new();
        let mut request = PageRequest::default().limit(5);
        loop {
            let page = accounts::list(&w.a, &AccountFilter::default(), &request)
                .await
                .unwrap();
            assert!(page.items.len() <= 5);
            seen.extend(page.items.iter().map(|a| a.id));
            if !page.has_more {
                break;
            }
            request.after = page.next;
        }
        assert_eq!(seen, expected);
    })
    .await;
}

#[tokio::test]
async fn a_sync_walk_sees_every_change_exactly_once_including_tombstones() {
    each_backend(|w| async move {
        let mut created = Vec::new();
        for i in 0..12 {
            created.push(new_person(&w.a, i).await);
        }
        new_person(&w.b, 99).await;
        let (first, cursor) = sync_people(&w.a, None, 5).await;
        let mut expected: Vec<_> = created.iter().map(|p| (p.updated_at, p.id)).collect();
        expected.sort();
        assert_eq!(
            first
                .iter()
                .map(|p| (p.updated_at, p.id))
                .collect::<Vec<_>>(),
            expected
        );

        // Change some rows (the oldest first, so they move behind the cursor), delete one.
        let stage = PersonPatch {
            stage: Some(Stage::Contacted),
            ..Default::default()
        };
        let changed_a = people::update(&w.a, created[0].id, None, stage.clone())
            .await
            .unwrap();
        let changed_b = people::update(&w.a, created[7].id, None, stage.clone())
            .await
            .unwrap();
        let deleted = people::delete(&w.a, created[3].id, None).await.unwrap();
        let changed_again = people::update(
            &w.a,
            created[0].id,
            None,
            PersonPatch {
                stage: Some(Stage::Qualified),
                ..Default::default()
            },
        )
        .await
        .unwrap();

        let (second, cursor) = sync_people(&w.a, cursor, 2).await;
        let ids: Vec<_> = second.iter().map(|p| p.id).collect();
        assert_eq!(
            ids,
            [changed_b.id, deleted.id, changed_again.id],
            "each changed row once, latest version"
        );
        assert!(changed_a.version < changed_again.version);
        assert_eq!(
            second[1].deleted_at,
            Some(deleted.updated_at),
            "the tombstone is in the sync list"
        );
        assert_eq!(second[2].stage, Stage::Qualified);

        // Normal lists skip the tombstone; an empty sync page keeps the cursor.
        let live = people::list(&w.a, &PersonFilter::default(), &PageRequest::default())
            .await
            .unwrap();
        assert_eq!(live.items.len(), 11);
        assert!(live.items.iter().all(|p| p.id != deleted.id));
        let empty = people::list(&w.a, &PersonFilter::default(), &PageRequest::sync(cursor))
            .await
            .unwrap();
        assert!(empty.items.is_empty());
        assert_eq!((empty.next, empty.has_more), (cursor, false));
    })
    .await;
}

#[tokio::test]
async fn updated_at_strictly_increases_under_rapid_successive_and_concurrent_updates() {
    each_backend(|w| async move {
        let account = new_account(&w.a, 0).await;
        let mut stamps = vec![(account.version, account.updated_at)];
        for i in 0..25 {
            let patch = AccountPatch {
                name: Some(format!("Name {i}")),
                ..Default::default()
            };
            let updated = accounts::update(&w.a, account.id, None, patch)
                .await
                .unwrap();
            stamps.push((updated.version, updated.updated_at));
        }
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..4 {
            let db = w.a.clone();
            tasks.spawn(async move {
                let patch = AccountPatch {
                    name: Some(format!("Concurrent {i}")),
                    ..Default::default()
                };
                accounts::update(&db, account.id, None, patch).await
            });
        }
        while let Some(result) = tasks.join_next().await {
            let updated = result
                .expect("task")
                .expect("concurrent update without a version succeeds");
            stamps.push((updated.version, updated.updated_at));
        }
        stamps.sort();
        assert_eq!(
            stamps.iter().map(|s| s.0).collect::<Vec<_>>(),
            (1..=30).collect::<Vec<_>>()
        );
        assert!(
            stamps.windows(2).all(|pair| pair[0].1 < pair[1].1),
            "updated_at strictly increases: {stamps:?}"
        );
        assert_eq!(
            accounts::get(&w.a, account.id).await.unwrap().updated_at,
            stamps[29].1
        );
    })
    .await;
}

#[tokio::test]
async fn offset_pages_cover_every_row_once_in_id_order() {
    each_backend(|w| async move {
        let mut ids = Vec::new();
        for i in 0..7 {
            ids.push(new_account(&w.a, i).await.id);
        }
        accounts::delete(&w.a, ids[6], None).await.unwrap();
        let page = |page, include_deleted| OffsetRequest {
            page,
            per_page: 3,
            include_deleted,
        };
        let filter = AccountFilter::default();
        let mut seen = Vec::new();
        for n in 1..=2 {
            let got = accounts::list_offset(&w.a, &filter, &page(n, false))
                .await
                .unwrap();
            assert_eq!((got.page, got.per_page, got.has_more), (n, 3, n == 1));
            seen.extend(got.items.into_iter().map(|a| a.id));
        }
        assert_eq!(seen, ids[..6]);
        let with_tombstone = accounts::list_offset(&w.a, &filter, &page(3, true))
            .await
            .unwrap();
        assert_eq!(
            with_tombstone
                .items
                .iter()
                .map(|a| a.id)
                .collect::<Vec<_>>(),
            [ids[6]]
        );
        assert!(
            accounts::list_offset(&w.b, &filter, &page(1, true))
                .await
                .unwrap()
                .items
                .is_empty()
        );

        let person = new_person(&w.a, 0).await;
        let people_page =
            people::list_offset(&w.a, &PersonFilter::default(), &OffsetRequest::default())
                .await
                .unwrap();
        assert_eq!(people_page.items, [person]);
        let activities_page =
            activities::list_offset(&w.a, &ActivityFilter::default(), &OffsetRequest::default())
                .await
                .unwrap();
        assert!(activities_page.items.is_empty() && !activities_page.has_more);
        assert_eq!(
            invalid_fields(accounts::list_offset(&w.a, &filter, &page(0, false)).await),
            [("page".into(), "out_of_range")]
        );
    })
    .await;
}

#[tokio::test]
async fn a_cursor_from_another_order_and_an_out_of_range_limit_are_rejected() {
    each_backend(|w| async move {
        let filter = PersonFilter::default();
        let by_id = PageRequest {
            after: Some(Position::UpdatedAt(chrono::Utc::now(), Uuid::now_v7())),
            ..PageRequest::default()
        };
        assert_eq!(
            invalid_fields(people::list(&w.a, &filter, &by_id).await),
            [("cursor".into(), "cursor_mismatch")]
        );
        let sync = PageRequest {
            sort: SortKey::UpdatedAt,
            after: Some(Position::Id(Uuid::now_v7())),
            ..PageRequest::default()
        };
        assert_eq!(
            invalid_fields(people::list_with_account_name(&w.a, &filter, &sync).await),
            [("cursor".into(), "cursor_mismatch")]
        );
        assert_eq!(
            invalid_fields(identity::list_users(&w.a, &PageRequest::default().limit(201)).await),
            [("limit".into(), "out_of_range")]
        );
    })
    .await;
}

/// One sync read of A's people from `after`, with the safety window's `cutoff` applied.
async fn sync_read(
    db: &TenantDb,
    after: Option<Position>,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> (Vec<Uuid>, Option<Position>) {
    let request = PageRequest {
        sort: SortKey::UpdatedAt,
        after,
        limit: 200,
        include_deleted: true,
    };
    let mut page = people::list(db, &PersonFilter::default(), &request)
        .await
        .unwrap();
    domain::pagination::hold_back_unsettled(&mut page, &request, cutoff, |p| (p.updated_at, p.id));
    (page.items.iter().map(|p| p.id).collect(), page.next)
}

/// The case the sync safety window exists for, with two real transactions and the
/// window's real default: a write that commits late carries an `updated_at` older than a
/// row a syncing client has already seen. Without the window the client's cursor moves
/// past it and never sees it; with it, the young row is held back until the late commit
/// had time to land, and both are delivered.
///
/// PostgreSQL only: SQLite runs one write transaction at a time (the writer turn), so a
/// commit cannot land out of `updated_at` order there.
#[tokio::test]
async fn a_late_commit_with_an_older_updated_at_is_delivered_not_skipped() {
    each_backend(|w| async move {
        if matches!(w.test.backend, tenancy::testing::Backend::Sqlite) {
            return;
        }
        let window =
            chrono::TimeDelta::from_std(domain::pagination::DEFAULT_SYNC_SAFETY_WINDOW).unwrap();
        let settled = chrono::Utc::now() + chrono::TimeDelta::days(1);
        // Where a client that synced everything so far stands.
        let (_, start) = sync_read(&w.a, None, settled).await;

        let late = w.a.begin().await.unwrap();
        let older = new_person_in(&late, "late").await;
        let younger = new_person(&w.a, 1).await;
        assert!(older.updated_at < younger.updated_at);

        // A sync read now, with the real window: the younger row is held back (unless the
        // machine stalled past the window, which would make this read say nothing).
        let read_at = chrono::Utc::now();
        let (seen, held) = sync_read(&w.a, start, read_at - window).await;
        let fresh = read_at - younger.updated_at < window;
        if fresh {
            assert!(seen.is_empty(), "{seen:?}");
            assert_eq!(held, start, "the cursor stays where it was");
        } else {
            eprintln!("the machine stalled past the window: its half of this test says nothing");
        }
        // Without a window, the cursor would move past the younger row…
        let (seen, unsafe_next) = sync_read(&w.a, start, read_at).await;
        assert_eq!(seen, [younger.id]);

        late.commit().await.unwrap();
        // …and the late commit, with its older `updated_at`, would never be seen from there.
        let (seen, _) = sync_read(&w.a, unsafe_next, settled).await;
        assert!(!seen.contains(&older.id), "skipped without the window");
        // With the window, both are delivered once settled, in order.
        if fresh {
            let (seen, _) = sync_read(&w.a, held, settled).await;
            assert_eq!(seen, [older.id, younger.id]);
        }
    })
    .await;
}

async fn new_person_in(db: &tenancy::TenantTxn, name: &str) -> Person {
    let input = PersonCreate {
        first_name: name.to_owned(),
        last_name: "Doe".into(),
        ..Default::default()
    };
    people::create(db, input).await.unwrap()
}
