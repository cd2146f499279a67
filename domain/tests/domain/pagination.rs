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
