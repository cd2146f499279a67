use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use domain::activities::{self, ActivityCreate, ActivityFilter, ActivityKind, ActivityPatch};
use domain::pagination::{OffsetRequest, PageRequest, Position};
use domain::people::{self, PersonCreate};
use tenancy::TenantDb;
use uuid::Uuid;

use crate::support::{assert_not_found, assert_version_mismatch, each_backend, invalid_fields};

fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, hour, 0, 0)
        .single()
        .expect("valid time")
}

async fn person(db: &TenantDb, first: &str) -> Uuid {
    let input = PersonCreate {
        first_name: first.into(),
        last_name: "Doe".into(),
        ..Default::default()
    };
    people::create(db, input).await.unwrap().id
}

fn call(person_id: Uuid, hour: u32) -> ActivityCreate {
    ActivityCreate {
        person_id,
        user_id: None,
        kind: ActivityKind::Call,
        subject: format!("Call at {hour}"),
        body: None,
        occurred_at: Some(at(hour)),
    }
}

async fn ids(db: &TenantDb, filter: ActivityFilter) -> Vec<Uuid> {
    activities::list(db, &filter, &PageRequest::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|a| a.id)
        .collect()
}

#[tokio::test]
async fn an_activity_is_logged_read_updated_and_soft_deleted() {
    each_backend(|w| async move {
        let ann = person(&w.a, "Ann").await;
        let bob = person(&w.a, "Bob").await;
        let input = ActivityCreate {
            user_id: Some(w.a_admin.id),
            body: Some("Talked pricing.\nFollow up Friday.".into()),
            occurred_at: Some(at(9) + TimeDelta::nanoseconds(1_234_567)),
            ..call(ann, 9)
        };
        let created = activities::create(&w.a, input).await.unwrap();
        assert_eq!(
            created.occurred_at,
            at(9) + TimeDelta::microseconds(1_234),
            "stored at microsecond precision"
        );
        assert_eq!(
            (created.kind, created.user_id, created.version),
            (ActivityKind::Call, Some(w.a_admin.id), 1)
        );
        assert_eq!(activities::get(&w.a, created.id).await.unwrap(), created);
        let defaulted = activities::create(
            &w.a,
            ActivityCreate {
                occurred_at: None,
                ..call(ann, 1)
            },
        )
        .await
        .unwrap();
        assert_eq!(
            defaulted.occurred_at, defaulted.created_at,
            "occurred_at defaults to now"
        );

        let patch = ActivityPatch {
            person_id: Some(bob),
            user_id: Some(None),
            kind: Some(ActivityKind::Meeting),
            subject: Some("Demo".into()),
            body: Some(None),
            occurred_at: Some(at(10)),
        };
        let updated = activities::update(&w.a, created.id, Some(1), patch)
            .await
            .unwrap();
        assert_eq!(
            (updated.person_id, updated.user_id, updated.kind),
            (bob, None, ActivityKind::Meeting)
        );
        assert_eq!(
            (
                updated.subject.as_str(),
                updated.body.as_deref(),
                updated.occurred_at
            ),
            ("Demo", None, at(10))
        );
        assert_eq!(updated.version, 2);
        assert_version_mismatch(
            activities::update(
                &w.a,
                created.id,
                Some(1),
                ActivityPatch {
                    subject: Some("x".into()),
                    ..Default::default()
                },
            )
            .await,
            1,
            2,
        );
        assert_version_mismatch(activities::delete(&w.a, created.id, Some(1)).await, 1, 2);

        let tombstone = activities::delete(&w.a, created.id, Some(2)).await.unwrap();
        assert_eq!(
            (tombstone.version, tombstone.deleted_at),
            (3, Some(tombstone.updated_at))
        );
        assert_not_found(activities::get(&w.a, created.id).await, None);
        assert_eq!(ids(&w.a, ActivityFilter::default()).await, [defaulted.id]);
    })
    .await;
}

#[tokio::test]
async fn invalid_activity_input_is_rejected_field_by_field_and_nothing_is_written() {
    each_backend(|w| async move {
        let ann = person(&w.a, "Ann").await;
        let bad = ActivityCreate {
            subject: " ".into(),
            body: Some("x".repeat(64 * 1024 + 1)),
            occurred_at: Some(
                Utc.with_ymd_and_hms(1969, 12, 31, 0, 0, 0)
                    .single()
                    .expect("valid"),
            ),
            ..call(ann, 9)
        };
        let fields = invalid_fields(activities::create(&w.a, bad).await);
        assert_eq!(
            fields,
            [
                ("subject".into(), "required"),
                ("body".into(), "too_long"),
                ("occurred_at".into(), "out_of_range")
            ]
        );
        assert!(ids(&w.a, ActivityFilter::default()).await.is_empty());

        let activity = activities::create(&w.a, call(ann, 9)).await.unwrap();
        let patch = ActivityPatch {
            subject: Some("".into()),
            body: Some(Some("\u{7}".into())),
            ..Default::default()
        };
        let fields = invalid_fields(activities::update(&w.a, activity.id, None, patch).await);
        assert_eq!(
            fields,
            [
                ("subject".into(), "required"),
                ("body".into(), "invalid_characters")
            ]
        );
        assert_eq!(activities::get(&w.a, activity.id).await.unwrap(), activity);
    })
    .await;
}

#[tokio::test]
async fn a_reference_to_another_tenants_person_or_user_is_not_found_and_nothing_is_written() {
    each_backend(|w| async move {
        let a_person = person(&w.a, "Ann").await;
        let b_person = person(&w.b, "Bea").await;
        assert_not_found(
            activities::create(&w.b, call(a_person, 9)).await,
            Some("person_id"),
        );
        let foreign_user = ActivityCreate {
            user_id: Some(w.a_admin.id),
            ..call(b_person, 9)
        };
        assert_not_found(
            activities::create(&w.b, foreign_user).await,
            Some("user_id"),
        );
        assert!(ids(&w.b, ActivityFilter::default()).await.is_empty());

        let activity = activities::create(&w.b, call(b_person, 9)).await.unwrap();
        let move_away = ActivityPatch {
            person_id: Some(a_person),
            ..Default::default()
        };
        assert_not_found(
            activities::update(&w.b, activity.id, None, move_away).await,
            Some("person_id"),
        );
        let blame = ActivityPatch {
            user_id: Some(Some(w.a_admin.id)),
            ..Default::default()
        };
        assert_not_found(
            activities::update(&w.b, activity.id, None, blame).await,
            Some("user_id"),
        );
        assert_eq!(activities::get(&w.b, activity.id).await.unwrap(), activity);
    })
    .await;
}

#[tokio::test]
async fn another_tenant_never_sees_or_changes_an_activity() {
    each_backend(|w| async move {
        let ann = person(&w.a, "Ann").await;
        let activity = activities::create(&w.a, call(ann, 9)).await.unwrap();
        assert_not_found(activities::get(&w.b, activity.id).await, None);
        let patch = ActivityPatch {
            subject: Some("Hijacked".into()),
            ..Default::default()
        };
        assert_not_found(
            activities::update(&w.b, activity.id, None, patch).await,
            None,
        );
        assert_not_found(activities::delete(&w.b, activity.id, Some(1)).await, None);
        assert!(
            ids(
                &w.b,
                ActivityFilter {
                    person_id: Some(ann),
                    ..Default::default()
                }
            )
            .await
            .is_empty()
        );
        assert!(
            activities::feed(&w.b, &ActivityFilter::default(), None, 50)
                .await
                .unwrap()
                .items
                .is_empty()
        );
        assert_eq!(activities::count_for_person(&w.b, ann).await.unwrap(), 0);
        assert_eq!(activities::get(&w.a, activity.id).await.unwrap(), activity);
    })
    .await;
}

#[tokio::test]
async fn activities_filter_by_person_kind_and_occurred_at_range() {
    each_backend(|w| async move {
        let ann = person(&w.a, "Ann").await;
        let bob = person(&w.a, "Bob").await;
        let a1 = activities::create(&w.a, call(ann, 8)).await.unwrap().id;
        let a2 = activities::create(
            &w.a,
            ActivityCreate {
                kind: ActivityKind::Email,
                ..call(ann, 10)
            },
        )
        .await
        .unwrap()
        .id;
        let a3 = activities::create(&w.a, call(bob, 12)).await.unwrap().id;
        let b_person = person(&w.b, "Bea").await;
        activities::create(&w.b, call(b_person, 10)).await.unwrap();

        assert_eq!(
            ids(
                &w.a,
                ActivityFilter {
                    person_id: Some(ann),
                    ..Default::default()
                }
            )
            .await,
            [a1, a2]
        );
        assert_eq!(
            ids(
                &w.a,
                ActivityFilter {
                    kind: Some(ActivityKind::Call),
                    ..Default::default()
                }
            )
            .await,
            [a1, a3]
        );
        let window = ActivityFilter {
            occurred_from: Some(at(10)),
            occurred_before: Some(at(12)),
            ..Default::default()
        };
        assert_eq!(
            ids(&w.a, window).await,
            [a2],
            "from is inclusive, before exclusive"
        );
        assert_eq!(
            ids(
                &w.a,
                ActivityFilter {
                    occurred_from: Some(at(9)),
                    ..Default::default()
                }
            )
            .await,
            [a2, a3]
        );
        assert_eq!(activities::count_for_person(&w.a, ann).await.unwrap(), 2);

        let backwards = ActivityFilter {
            occurred_from: Some(at(12)),
            occurred_before: Some(at(10)),
            ..Default::default()
        };
        let result = activities::list(&w.a, &backwards, &PageRequest::default()).await;
        assert_eq!(
            invalid_fields(result),
            [("occurred_before".into(), "out_of_range")]
        );
    })
    .await;
}

#[tokio::test]
async fn the_feed_is_newest_first_with_each_persons_details_and_pages_without_repeats() {
    each_backend(|w| async move {
        let ann = person(&w.a, "Ann").await;
        let bob = person(&w.a, "Bob").await;
        let mut expected = Vec::new();
        for hour in [9, 11, 10, 11, 8] {
            expected.push(activities::create(&w.a, call(ann, hour)).await.unwrap());
        }
        let bobs = activities::create(&w.a, call(bob, 12)).await.unwrap();
        let deleted = activities::create(&w.a, call(ann, 13)).await.unwrap();
        activities::delete(&w.a, deleted.id, None).await.unwrap();
        expected.push(bobs.clone());
        expected.sort_by_key(|a| std::cmp::Reverse((a.occurred_at, a.id)));

        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = activities::feed(&w.a, &ActivityFilter::default(), before, 2)
                .await
                .unwrap();
            assert!(page.items.len() <= 2);
            for item in &page.items {
                assert_eq!(item.person.id, item.activity.person_id);
            }
            seen.extend(
                page.items
                    .into_iter()
                    .map(|item| (item.activity.id, item.person.first_name)),
            );
            if !page.has_more {
                break;
            }
            before = page.next;
        }
        let want: Vec<_> = expected
            .iter()
            .map(|a| {
                (
                    a.id,
                    if a.person_id == bob { "Bob" } else { "Ann" }.to_owned(),
                )
            })
            .collect();
        assert_eq!(seen, want);

        // A deleted person's activities leave the feed; a filter narrows it.
        people::delete(&w.a, bob, None).await.unwrap();
        let feed = activities::feed(&w.a, &ActivityFilter::default(), None, 50)
            .await
            .unwrap();
        assert!(feed.items.iter().all(|item| item.activity.id != bobs.id));
        let only_8 = ActivityFilter {
            occurred_before: Some(at(9)),
            ..Default::default()
        };
        assert_eq!(
            activities::feed(&w.a, &only_8, None, 50)
                .await
                .unwrap()
                .items
                .len(),
            1
        );
        let wrong = activities::feed(
            &w.a,
            &ActivityFilter::default(),
            Some(Position::Id(ann)),
            50,
        )
        .await;
        assert_eq!(
            invalid_fields(wrong),
            [("cursor".into(), "cursor_mismatch")]
        );
        assert_eq!(
            invalid_fields(activities::feed(&w.a, &ActivityFilter::default(), None, 0).await),
            [("limit".into(), "out_of_range")]
        );
    })
    .await;
}

#[tokio::test]
async fn an_activity_is_read_with_its_person_of_the_callers_tenant_only() {
    each_backend(|w| async move {
        let ada = person(&w.a, "Ada").await;
        let first = activities::create(&w.a, call(ada, 9)).await.unwrap();
        let second = activities::create(&w.a, call(ada, 10)).await.unwrap();
        // Tenant B gets a person with the very same id (forged): A's reads embed A's.
        crate::people::raw::copy_row(&w, "people", ada, &w.b, "Impostor").await;

        let read = activities::get_with_person(&w.a, first.id).await.unwrap();
        assert_eq!(read.activity, first);
        assert_eq!(
            read.person.map(|p| (p.id, p.first_name)),
            Some((ada, "Ada".to_owned()))
        );
        assert_not_found(activities::get_with_person(&w.b, first.id).await, None);

        let people = |rows: Vec<activities::ActivityWithPerson>| -> Vec<(Uuid, Option<String>)> {
            rows.into_iter()
                .map(|r| (r.activity.id, r.person.map(|p| p.first_name)))
                .collect()
        };
        let all = ActivityFilter::default();
        let ada_name = Some("Ada".to_owned());
        let page = activities::list_with_person(&w.a, &all, &PageRequest::default().limit(1))
            .await
            .unwrap();
        assert_eq!(people(page.items), [(first.id, ada_name.clone())]);
        let request = PageRequest {
            after: page.next,
            ..PageRequest::default()
        };
        let rest = activities::list_with_person(&w.a, &all, &request)
            .await
            .unwrap();
        assert_eq!(
            (people(rest.items), rest.has_more),
            (vec![(second.id, ada_name.clone())], false)
        );
        let offset = activities::list_offset_with_person(&w.a, &all, &OffsetRequest::default())
            .await
            .unwrap();
        assert_eq!(
            people(offset.items),
            [(first.id, ada_name.clone()), (second.id, ada_name)]
        );

        // A's person deleted (their activities stay): no person is embedded, though B's
        // namesake is live.
        people::delete(&w.a, ada, None).await.unwrap();
        let read = activities::get_with_person(&w.a, first.id).await.unwrap();
        assert_eq!((read.activity, read.person), (first, None));
    })
    .await;
}
