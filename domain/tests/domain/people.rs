use domain::accounts::{self, AccountCreate};
use domain::pagination::{OffsetRequest, PageRequest};
use domain::people::{self, PersonCreate, PersonFilter, PersonPatch, Stage};
use tenancy::TenantDb;
use uuid::Uuid;

use crate::support::{assert_not_found, assert_version_mismatch, each_backend, invalid_fields};

fn ada() -> PersonCreate {
    PersonCreate {
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
        ..Default::default()
    }
}

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

async fn ids(db: &TenantDb, filter: PersonFilter) -> Vec<Uuid> {
    people::list(db, &filter, &PageRequest::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.id)
        .collect()
}

#[tokio::test]
async fn a_person_is_created_read_updated_and_soft_deleted() {
    each_backend(|w| async move {
        let acme = account(&w.a, "Acme").await;
        let input = PersonCreate {
            account_id: Some(acme),
            email: Some("Ada@Example.com".into()),
            title: Some(" CTO ".into()),
            phone: Some("+44 20 7946 0958".into()),
            ..ada()
        };
        let created = people::create(&w.a, input).await.unwrap();
        assert_eq!(created.email.as_deref(), Some("ada@example.com"));
        assert_eq!(created.title.as_deref(), Some("CTO"));
        assert_eq!(created.phone.as_deref(), Some("+442079460958"));
        assert_eq!(
            (created.stage, created.account_id, created.version),
            (Stage::Lead, Some(acme), 1)
        );
        assert_eq!(people::get(&w.a, created.id).await.unwrap(), created);

        let patch = PersonPatch {
            account_id: Some(None),
            email: Some(None),
            stage: Some(Stage::Qualified),
            last_name: Some("King".into()),
            ..Default::default()
        };
        let updated = people::update(&w.a, created.id, Some(1), patch)
            .await
            .unwrap();
        assert_eq!(
            (updated.account_id, updated.email.as_deref(), updated.stage),
            (None, None, Stage::Qualified)
        );
        assert_eq!(
            (
                updated.last_name.as_str(),
                updated.title.as_deref(),
                updated.version
            ),
            ("King", Some("CTO"), 2)
        );
        assert!(updated.updated_at > created.updated_at);

        assert_version_mismatch(people::delete(&w.a, created.id, Some(1)).await, 1, 2);
        assert_version_mismatch(
            people::update(
                &w.a,
                created.id,
                Some(1),
                PersonPatch {
                    stage: Some(Stage::Lost),
                    ..Default::default()
                },
            )
            .await,
            1,
            2,
        );
        let tombstone = people::delete(&w.a, created.id, Some(2)).await.unwrap();
        assert_eq!(
            (tombstone.version, tombstone.deleted_at),
            (3, Some(tombstone.updated_at))
        );
        assert_not_found(people::get(&w.a, created.id).await, None);
        assert!(ids(&w.a, PersonFilter::default()).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn invalid_person_input_is_rejected_field_by_field_and_nothing_is_written() {
    each_backend(|w| async move {
        let bad = PersonCreate {
            first_name: "".into(),
            last_name: "x".repeat(201),
            email: Some("ada@".into()),
            title: Some("".into()),
            phone: Some("call me".into()),
            ..Default::default()
        };
        let fields = invalid_fields(people::create(&w.a, bad).await);
        assert_eq!(
            fields,
            [
                ("first_name".into(), "required"),
                ("last_name".into(), "too_long"),
                ("email".into(), "invalid_email"),
                ("title".into(), "required"),
                ("phone".into(), "invalid_phone"),
            ]
        );
        assert!(ids(&w.a, PersonFilter::default()).await.is_empty());

        let person = people::create(&w.a, ada()).await.unwrap();
        let patch = PersonPatch {
            email: Some(Some("nope".into())),
            phone: Some(Some("1".into())),
            ..Default::default()
        };
        let fields = invalid_fields(people::update(&w.a, person.id, Some(1), patch).await);
        assert_eq!(
            fields,
            [
                ("email".into(), "invalid_email"),
                ("phone".into(), "invalid_phone")
            ]
        );
        assert_eq!(people::get(&w.a, person.id).await.unwrap(), person);
    })
    .await;
}

#[tokio::test]
async fn a_reference_to_another_tenants_or_a_deleted_account_is_not_found_and_nothing_is_written() {
    each_backend(|w| async move {
        let a_account = account(&w.a, "A's").await;
        let create = people::create(
            &w.b,
            PersonCreate {
                account_id: Some(a_account),
                ..ada()
            },
        )
        .await;
        assert_not_found(create, Some("account_id"));
        assert!(ids(&w.b, PersonFilter::default()).await.is_empty());

        let b_person = people::create(&w.b, ada()).await.unwrap();
        let patch = PersonPatch {
            account_id: Some(Some(a_account)),
            ..Default::default()
        };
        assert_not_found(
            people::update(&w.b, b_person.id, None, patch).await,
            Some("account_id"),
        );
        assert_eq!(people::get(&w.b, b_person.id).await.unwrap(), b_person);

        let gone = account(&w.a, "Gone").await;
        accounts::delete(&w.a, gone, None).await.unwrap();
        assert_not_found(
            people::create(
                &w.a,
                PersonCreate {
                    account_id: Some(gone),
                    ..ada()
                },
            )
            .await,
            Some("account_id"),
        );
    })
    .await;
}

#[tokio::test]
async fn another_tenant_never_sees_or_changes_a_person() {
    each_backend(|w| async move {
        let person = people::create(
            &w.a,
            PersonCreate {
                email: Some("ada@example.com".into()),
                ..ada()
            },
        )
        .await
        .unwrap();
        assert_not_found(people::get(&w.b, person.id).await, None);
        let patch = PersonPatch {
            stage: Some(Stage::Lost),
            ..Default::default()
        };
        assert_not_found(people::update(&w.b, person.id, Some(1), patch).await, None);
        assert_not_found(people::delete(&w.b, person.id, None).await, None);
        let by_email = PersonFilter {
            email: Some("ada@example.com".into()),
            ..Default::default()
        };
        assert!(ids(&w.b, by_email).await.is_empty());
        assert!(
            people::list(&w.b, &PersonFilter::default(), &PageRequest::sync(None))
                .await
                .unwrap()
                .items
                .is_empty()
        );
        let joined =
            people::list_with_account(&w.b, &PersonFilter::default(), &PageRequest::default())
                .await
                .unwrap();
        assert!(joined.items.is_empty());
        assert_eq!(people::get(&w.a, person.id).await.unwrap(), person);
    })
    .await;
}

#[tokio::test]
async fn people_filter_by_account_stage_and_email() {
    each_backend(|w| async move {
        let acme = account(&w.a, "Acme").await;
        let globex = account(&w.a, "Globex").await;
        let mk = |account_id, stage, email: &str| PersonCreate {
            account_id,
            stage: Some(stage),
            email: Some(email.into()),
            ..ada()
        };
        let p1 = people::create(&w.a, mk(Some(acme), Stage::Lead, "one@acme.com"))
            .await
            .unwrap()
            .id;
        let p2 = people::create(&w.a, mk(Some(acme), Stage::Customer, "two@acme.com"))
            .await
            .unwrap()
            .id;
        let p3 = people::create(&w.a, mk(Some(globex), Stage::Customer, "three@globex.com"))
            .await
            .unwrap()
            .id;
        let p4 = people::create(&w.a, mk(None, Stage::Lead, "four@example.com"))
            .await
            .unwrap()
            .id;
        people::create(&w.b, mk(None, Stage::Customer, "one@acme.com"))
            .await
            .unwrap();

        let by_account = PersonFilter {
            account_id: Some(acme),
            ..Default::default()
        };
        assert_eq!(ids(&w.a, by_account.clone()).await, [p1, p2]);
        assert_eq!(
            ids(
                &w.a,
                PersonFilter {
                    stage: Some(Stage::Customer),
                    ..Default::default()
                }
            )
            .await,
            [p2, p3]
        );
        assert_eq!(
            ids(
                &w.a,
                PersonFilter {
                    email: Some("ONE@acme.com".into()),
                    ..Default::default()
                }
            )
            .await,
            [p1]
        );
        assert_eq!(
            ids(
                &w.a,
                PersonFilter {
                    stage: Some(Stage::Lead),
                    ..by_account
                }
            )
            .await,
            [p1]
        );
        assert_eq!(ids(&w.a, PersonFilter::default()).await, [p1, p2, p3, p4]);
        assert_eq!(people::count_for_account(&w.a, acme).await.unwrap(), 2);
        people::delete(&w.a, p2, None).await.unwrap();
        assert_eq!(
            people::count_for_account(&w.a, acme).await.unwrap(),
            1,
            "only live people count"
        );
        assert_eq!(people::count_for_account(&w.b, acme).await.unwrap(), 0);
        let bad = people::list(
            &w.a,
            &PersonFilter {
                email: Some("x".into()),
                ..Default::default()
            },
            &PageRequest::default(),
        )
        .await;
        assert_eq!(invalid_fields(bad), [("email".into(), "invalid_email")]);
    })
    .await;
}

#[tokio::test]
async fn people_are_listed_with_their_account_name_page_by_page() {
    each_backend(|w| async move {
        let acme = account(&w.a, "Acme").await;
        let gone = account(&w.a, "Gone").await;
        let with = people::create(
            &w.a,
            PersonCreate {
                account_id: Some(acme),
                ..ada()
            },
        )
        .await
        .unwrap();
        let without = people::create(&w.a, ada()).await.unwrap();
        let orphan = people::create(
            &w.a,
            PersonCreate {
                account_id: Some(gone),
                ..ada()
            },
        )
        .await
        .unwrap();
        accounts::delete(&w.a, gone, None).await.unwrap();
        // Tenant B has an account with the same name: it must never leak into A's rows.
        account(&w.b, "Acme").await;

        let mut seen = Vec::new();
        let mut request = PageRequest::default().limit(2);
        loop {
            let page = people::list_with_account(&w.a, &PersonFilter::default(), &request)
                .await
                .unwrap();
            seen.extend(
                page.items
                    .into_iter()
                    .map(|row| (row.person.id, row.account.map(|a| a.name))),
            );
            if !page.has_more {
                break;
            }
            request.after = page.next;
        }
        assert_eq!(
            seen,
            [
                (with.id, Some("Acme".to_owned())),
                (without.id, None),
                (orphan.id, None)
            ]
        );

        let by_acme = PersonFilter {
            account_id: Some(acme),
            ..Default::default()
        };
        let sync = people::list_with_account(&w.a, &by_acme, &PageRequest::sync(None))
            .await
            .unwrap();
        assert_eq!(sync.items.len(), 1);
        let account = sync.items[0]
            .account
            .as_ref()
            .map(|a| (a.id, a.name.as_str()));
        assert_eq!(account, Some((acme, "Acme")));
    })
    .await;
}

#[tokio::test]
async fn a_person_is_read_with_their_account_of_the_callers_tenant_only() {
    each_backend(|w| async move {
        let acme = account(&w.a, "Acme").await;
        let ada = people::create(
            &w.a,
            PersonCreate {
                account_id: Some(acme),
                ..ada()
            },
        )
        .await
        .unwrap();
        let alan = people::create(
            &w.a,
            PersonCreate {
                first_name: "Alan".into(),
                ..self::ada()
            },
        )
        .await
        .unwrap();
        // Tenant B gets an account with the very same id (forged: ids never collide by
        // themselves). A's reads must still embed A's account, and B's reads nothing of A.
        raw::copy_row(&w, "accounts", acme, &w.b, "Impostor").await;

        let read = people::get_with_account(&w.a, ada.id).await.unwrap();
        assert_eq!(read.person, ada);
        let account = read.account.map(|a| (a.id, a.name, a.version));
        assert_eq!(account, Some((acme, "Acme".to_owned(), 1)));
        assert_eq!(
            people::get_with_account(&w.a, alan.id)
                .await
                .unwrap()
                .account,
            None
        );
        assert_not_found(people::get_with_account(&w.b, ada.id).await, None);

        let names = |rows: Vec<people::PersonWithAccount>| -> Vec<(Uuid, Option<String>)> {
            rows.into_iter()
                .map(|r| (r.person.id, r.account.map(|a| a.name)))
                .collect()
        };
        let all = PersonFilter::default();
        let expected = vec![(ada.id, Some("Acme".to_owned())), (alan.id, None)];
        let page = people::list_with_account(&w.a, &all, &PageRequest::default())
            .await
            .unwrap();
        assert_eq!(names(page.items), expected);
        let mut offset = OffsetRequest {
            per_page: 1,
            ..OffsetRequest::default()
        };
        let first = people::list_offset_with_account(&w.a, &all, &offset)
            .await
            .unwrap();
        assert_eq!(
            (names(first.items), first.has_more),
            (expected[..1].to_vec(), true)
        );
        offset.page = 2;
        let second = people::list_offset_with_account(&w.a, &all, &offset)
            .await
            .unwrap();
        assert_eq!(
            (names(second.items), second.has_more),
            (expected[1..].to_vec(), false)
        );
        assert!(
            people::list_with_account(&w.b, &all, &PageRequest::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );

        // A's account deleted behind the domain's back (its person still names it): no
        // account is embedded, though B's namesake is live.
        raw::mark_deleted(&w, "accounts", &w.a, acme).await;
        assert_eq!(
            people::get_with_account(&w.a, ada.id)
                .await
                .unwrap()
                .account,
            None
        );
        let page = people::list_with_account(&w.a, &all, &PageRequest::default())
            .await
            .unwrap();
        assert_eq!(names(page.items), [(ada.id, None), (alan.id, None)]);
    })
    .await;
}

/// Rows written behind the domain's back, to build what the API can never produce.
#[expect(
    clippy::disallowed_types,
    reason = "tests only: the raw test connection, to forge rows across tenants"
)]
pub mod raw {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    use tenancy::{TenantDb, TenantHandle as _};
    use uuid::Uuid;

    use crate::support::World;

    async fn execute(w: &World, sql: &str, values: Vec<sea_orm::Value>) {
        let backend = w.test.raw.get_database_backend();
        let sql = match backend {
            DbBackend::Postgres => {
                let mut n = 0;
                sql.split('?')
                    .enumerate()
                    .map(|(i, part)| {
                        if i == 0 {
                            part.to_owned()
                        } else {
                            n += 1;
                            format!("${n}{part}")
                        }
                    })
                    .collect()
            }
            _ => sql.to_owned(),
        };
        let done = w
            .test
            .raw
            .execute_raw(Statement::from_sql_and_values(backend, sql.clone(), values))
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1, "{sql}");
    }

    /// Copies the account or person `id` into tenant `to`, with the same id, named `name`
    /// and with no references of its own.
    pub async fn copy_row(w: &World, table: &str, id: Uuid, to: &TenantDb, name: &str) {
        let sql = match table {
            "accounts" => {
                "INSERT INTO accounts (tenant_id, id, name, domain, owner_id, custom_fields, \
                 created_at, updated_at, version, deleted_at) SELECT ?, id, ?, domain, NULL, \
                 custom_fields, created_at, updated_at, version, deleted_at FROM accounts WHERE id = ?"
            }
            _ => {
                "INSERT INTO people (tenant_id, id, account_id, first_name, last_name, email, \
                 title, phone, stage, created_at, updated_at, version, deleted_at) SELECT ?, id, \
                 NULL, ?, last_name, email, title, phone, stage, created_at, updated_at, version, \
                 deleted_at FROM people WHERE id = ?"
            }
        };
        let values = vec![to.tenant().as_uuid().into(), name.into(), id.into()];
        execute(w, sql, values).await;
    }

    /// Marks row `id` of `of` in `table` deleted, without the domain's bookkeeping.
    pub async fn mark_deleted(w: &World, table: &str, of: &TenantDb, id: Uuid) {
        let sql =
            format!("UPDATE {table} SET deleted_at = updated_at WHERE tenant_id = ? AND id = ?");
        let values = vec![of.tenant().as_uuid().into(), id.into()];
        execute(w, &sql, values).await;
    }
}
