//! What the handles do on real databases, two tenants at a time.

use futures_util::TryStreamExt;
use sea_orm::{ActiveValue, Set};
use tenancy::testing::TestDb;
use tenancy::{ColumnExt, Error, Keyset, TenantDb, TenantHandle};
use uuid::Uuid;

use crate::support::entities::*;
use crate::support::{each_backend, new_tenant};

async fn add_account(db: &TenantDb, name: &str) -> account::Model {
    db.insert(account::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name.into()),
        currency: Set(None),
        ..Default::default()
    })
    .exec()
    .await
    .expect("insert account")
}

async fn add_person(db: &TenantDb, account: Option<Uuid>, name: &str, score: i32) -> person::Model {
    db.insert(person::ActiveModel {
        id: Set(Uuid::now_v7()),
        account_id: Set(account),
        name: Set(name.into()),
        score: Set(score),
        ..Default::default()
    })
    .exec()
    .await
    .expect("insert person")
}

async fn all_people(test: &TestDb) -> Vec<person::Model> {
    test.connected
        .unscoped
        .find::<person::Entity>("test oracle")
        .all()
        .await
        .expect("read all")
}

#[tokio::test]
async fn reads_return_only_the_handles_tenant() {
    each_backend(|test| async move {
        let (a, b) = (new_tenant(&test, "a").await, new_tenant(&test, "b").await);
        add_person(&a, None, "ann", 1).await;
        add_person(&a, None, "al", 2).await;
        add_person(&b, None, "bob", 3).await;

        let names: Vec<_> = a
            .find::<person::Entity>()
            .order_by_asc(person::Column::Name)
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["al", "ann"]);
        assert_eq!(b.find::<person::Entity>().count().await.unwrap(), 1);
        assert!(
            b.find::<person::Entity>()
                .filter(person::Column::Name.eq("ann"))
                .one()
                .await
                .unwrap()
                .is_none()
        );
        let streamed: Vec<_> = a
            .find::<person::Entity>()
            .stream()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(streamed.len(), 2);
        assert!(streamed.iter().all(|p| p.tenant_id == a.tenant().as_uuid()));
        let own = a.find_own::<tenant::Entity>().all().await.unwrap();
        assert_eq!(own.len(), 1);
        assert_eq!(own[0].name, "a");
    })
    .await;
}

#[tokio::test]
async fn a_join_never_reaches_another_tenants_row_even_when_the_keys_match() {
    each_backend(|test| async move {
        let (a, b) = (new_tenant(&test, "a").await, new_tenant(&test, "b").await);
        let secret = add_account(&a, "a-secret").await;
        // Tenant B's note points at tenant A's account id; the relation joins on
        // account_id alone, so only the ON-clause tenant predicate keeps A's row out.
        b.insert(note::ActiveModel {
            id: Set(Uuid::now_v7()),
            account_id: Set(secret.id),
            text: Set("probe".into()),
            ..Default::default()
        })
        .exec()
        .await
        .unwrap();

        let rows = b
            .find::<note::Entity>()
            .also::<account::Entity>()
            .all()
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].1, None, "tenant B must not see tenant A's account");
        assert_eq!(
            b.find::<note::Entity>()
                .join::<account::Entity>()
                .count()
                .await
                .unwrap(),
            0
        );
        // And the same join within tenant A finds its own account.
        a.insert(note::ActiveModel {
            id: Set(Uuid::now_v7()),
            account_id: Set(secret.id),
            text: Set("own".into()),
            ..Default::default()
        })
        .exec()
        .await
        .unwrap();
        let rows = a
            .find::<note::Entity>()
            .also::<account::Entity>()
            .all()
            .await
            .unwrap();
        assert_eq!(rows[0].1.as_ref().map(|acc| acc.id), Some(secret.id));
    })
    .await;
}

#[tokio::test]
async fn joined_reads_bring_related_rows_of_the_same_tenant() {
    each_backend(|test| async move {
        let a = new_tenant(&test, "a").await;
        let acme = add_account(&a, "acme").await;
        add_person(&a, Some(acme.id), "ann", 1).await;
        add_person(&a, Some(acme.id), "al", 2).await;
        add_person(&a, None, "solo", 3).await;

        let with = a
            .find::<account::Entity>()
            .with::<person::Entity>()
            .all()
            .await
            .unwrap();
        assert_eq!(with.len(), 1);
        assert_eq!(with[0].1.len(), 2);
        let also = a
            .find::<person::Entity>()
            .also::<account::Entity>()
            .all()
            .await
            .unwrap();
        assert_eq!(also.iter().filter(|(_, acc)| acc.is_some()).count(), 2);
        let joined = a
            .find::<person::Entity>()
            .join::<account::Entity>()
            .filter_on::<account::Entity>(account::Column::Name.eq("acme"))
            .count()
            .await
            .unwrap();
        assert_eq!(joined, 2);
    })
    .await;
}

#[tokio::test]
async fn many_to_many_is_two_explicit_scoped_hops() {
    each_backend(|test| async move {
        let a = new_tenant(&test, "a").await;
        let ann = add_person(&a, None, "ann", 1).await;
        let vip = a
            .insert(tag::ActiveModel {
                id: Set(Uuid::now_v7()),
                label: Set("vip".into()),
                ..Default::default()
            })
            .exec()
            .await
            .unwrap();
        a.insert(person_tag::ActiveModel {
            person_id: Set(ann.id),
            tag_id: Set(vip.id),
            ..Default::default()
        })
        .exec()
        .await
        .unwrap();

        let refused = a.find::<person::Entity>().join::<tag::Entity>().all().await;
        assert!(
            matches!(refused, Err(Error::JoinThroughJunction { .. })),
            "{refused:?}"
        );

        let tagged = a
            .find::<person::Entity>()
            .join::<person_tag::Entity>()
            .join_from::<person_tag::Entity, tag::Entity>()
            .filter_on::<tag::Entity>(tag::Column::Label.eq("vip"))
            .all()
            .await
            .unwrap();
        assert_eq!(tagged.iter().map(|p| p.id).collect::<Vec<_>>(), [ann.id]);
    })
    .await;
}

#[tokio::test]
async fn an_insert_naming_another_tenant_is_refused_and_writes_nothing() {
    each_backend(|test| async move {
        let (a, b) = (new_tenant(&test, "a").await, new_tenant(&test, "b").await);
        let result = a
            .insert(person::ActiveModel {
                tenant_id: Set(b.tenant().as_uuid()),
                id: Set(Uuid::now_v7()),
                account_id: Set(None),
                name: Set("intruder".into()),
                score: Set(0),
            })
            .exec()
            .await;
        assert!(
            matches!(result, Err(Error::TenantMismatch { .. })),
            "{result:?}"
        );
        let many = a
            .insert_many([
                person::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    account_id: Set(None),
                    name: Set("ok".into()),
                    score: Set(0),
                    ..Default::default()
                },
                person::ActiveModel {
                    tenant_id: Set(b.tenant().as_uuid()),
                    id: Set(Uuid::now_v7()),
                    account_id: Set(None),
                    name: Set("bad".into()),
                    score: Set(0),
                },
            ])
            .exec()
            .await;
        assert!(
            matches!(many, Err(Error::TenantMismatch { .. })),
            "{many:?}"
        );
        assert!(all_people(&test).await.is_empty());

        // The same tenant, stated explicitly, is accepted; an unset tenant is stamped.
        let stamped = add_person(&a, None, "ann", 1).await;
        assert_eq!(stamped.tenant_id, a.tenant().as_uuid());
        assert_eq!(
            a.insert_many([person::ActiveModel {
                tenant_id: Set(a.tenant().as_uuid()),
                id: Set(Uuid::now_v7()),
                account_id: Set(None),
                name: Set("al".into()),
                score: Set(2),
            }])
            .exec()
            .await
            .unwrap(),
            1
        );
    })
    .await;
}

#[tokio::test]
async fn updates_and_deletes_never_touch_another_tenants_rows() {
    each_backend(|test| async move {
        let (a, b) = (new_tenant(&test, "a").await, new_tenant(&test, "b").await);
        let ann = add_person(&a, None, "ann", 1).await;
        let bob = add_person(&b, None, "bob", 1).await;

        // B updates A's row by its id: not found, unchanged.
        let result = b
            .update(person::ActiveModel {
                id: ActiveValue::Unchanged(ann.id),
                score: Set(99),
                ..Default::default()
            })
            .exec()
            .await;
        assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}");
        // An ActiveModel read from A's row carries A's tenant: B's handle treats it as not found.
        let mut from_a: person::ActiveModel = ann.clone().into();
        from_a.score = Set(98);
        assert!(matches!(
            b.update(from_a).exec().await,
            Err(Error::NotFound { .. })
        ));

        assert_eq!(
            b.update_many::<person::Entity>()
                .set(person::Column::Score, 7)
                .exec()
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            b.update_many::<person::Entity>()
                .increment(person::Column::Score, 3)
                .exec()
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            b.delete_many::<person::Entity>()
                .filter(person::Column::Id.eq(ann.id))
                .exec()
                .await
                .unwrap(),
            0
        );
        let people = all_people(&test).await;
        assert_eq!(
            people.iter().find(|p| p.id == ann.id).map(|p| p.score),
            Some(1)
        );
        assert_eq!(
            people.iter().find(|p| p.id == bob.id).map(|p| p.score),
            Some(10)
        );

        // A updates its own row with a version-like guard.
        let updated = a
            .update(person::ActiveModel {
                id: ActiveValue::Unchanged(ann.id),
                score: Set(5),
                ..Default::default()
            })
            .filter(person::Column::Score.eq(1))
            .exec()
            .await
            .unwrap();
        assert_eq!(updated.score, 5);
        let stale = a
            .update(person::ActiveModel {
                id: ActiveValue::Unchanged(ann.id),
                score: Set(6),
                ..Default::default()
            })
            .filter(person::Column::Score.eq(1))
            .exec()
            .await;
        assert!(matches!(stale, Err(Error::NotFound { .. })), "{stale:?}");
        assert_eq!(a.delete_many::<person::Entity>().exec().await.unwrap(), 1);
        assert_eq!(
            all_people(&test)
                .await
                .iter()
                .map(|p| p.id)
                .collect::<Vec<_>>(),
            [bob.id]
        );
    })
    .await;
}

#[tokio::test]
async fn the_tenant_column_can_never_be_changed() {
    each_backend(|test| async move {
        let (a, b) = (new_tenant(&test, "a").await, new_tenant(&test, "b").await);
        let ann = add_person(&a, None, "ann", 1).await;
        let mut moved: person::ActiveModel = ann.clone().into();
        moved.tenant_id = Set(b.tenant().as_uuid());
        let result = a.update(moved).exec().await;
        assert!(
            matches!(result, Err(Error::TenantColumnImmutable { .. })),
            "{result:?}"
        );

        let many = a
            .update_many::<person::Entity>()
            .set(person::Column::TenantId, b.tenant().as_uuid())
            .exec()
            .await;
        assert!(
            matches!(many, Err(Error::TenantColumnImmutable { .. })),
            "{many:?}"
        );
        let incremented = a
            .update_many::<person::Entity>()
            .increment(person::Column::TenantId, 1)
            .exec()
            .await;
        assert!(
            matches!(incremented, Err(Error::TenantColumnImmutable { .. })),
            "{incremented:?}"
        );
        let set = a
            .update_many::<person::Entity>()
            .set_model(person::ActiveModel {
                tenant_id: Set(b.tenant().as_uuid()),
                ..Default::default()
            })
            .exec()
            .await;
        assert!(
            matches!(set, Err(Error::TenantColumnImmutable { .. })),
            "{set:?}"
        );
        assert_eq!(all_people(&test).await, vec![ann]);
    })
    .await;
}

#[tokio::test]
async fn an_upsert_conflicts_only_within_the_tenant() {
    each_backend(|test| async move {
        let (a, b) = (new_tenant(&test, "a").await, new_tenant(&test, "b").await);
        let id = Uuid::now_v7();
        fn upsert<'a>(
            db: &'a TenantDb,
            id: Uuid,
            label: &str,
        ) -> tenancy::Insert<'a, tag::ActiveModel> {
            db.insert(tag::ActiveModel {
                id: Set(id),
                label: Set(label.into()),
                ..Default::default()
            })
            .on_conflict_update(
                [tag::Column::Id],
                [tag::Column::Label, tag::Column::TenantId],
            )
        }
        upsert(&a, id, "first").exec().await.unwrap();
        let again = upsert(&a, id, "second").exec().await.unwrap();
        assert_eq!(again.label, "second");
        // The same id in tenant B is a different row, not a conflict with A's.
        let other = upsert(&b, id, "b's").exec().await.unwrap();
        assert_eq!(other.tenant_id, b.tenant().as_uuid());
        assert_eq!(
            a.find::<tag::Entity>()
                .one()
                .await
                .unwrap()
                .map(|t| t.label),
            Some("second".into())
        );
    })
    .await;
}

#[tokio::test]
async fn a_transaction_has_the_same_scope_and_rolls_back_when_dropped() {
    each_backend(|test| async move {
        let (a, b) = (new_tenant(&test, "a").await, new_tenant(&test, "b").await);
        add_person(&b, None, "bob", 1).await;
        {
            let txn = a.begin().await.unwrap();
            txn.insert(person::ActiveModel {
                id: Set(Uuid::now_v7()),
                account_id: Set(None),
                name: Set("tmp".into()),
                score: Set(0),
                ..Default::default()
            })
            .exec()
            .await
            .unwrap();
            assert_eq!(
                txn.find::<person::Entity>().count().await.unwrap(),
                1,
                "sees its own row, not B's"
            );
            assert_eq!(
                txn.delete_many::<person::Entity>()
                    .filter(person::Column::Name.eq("bob"))
                    .exec()
                    .await
                    .unwrap(),
                0
            );
        }
        assert_eq!(
            a.find::<person::Entity>().count().await.unwrap(),
            0,
            "dropped means rolled back"
        );
        let txn = a.begin().await.unwrap();
        txn.insert(person::ActiveModel {
            id: Set(Uuid::now_v7()),
            account_id: Set(None),
            name: Set("kept".into()),
            score: Set(0),
            ..Default::default()
        })
        .exec()
        .await
        .unwrap();
        txn.commit().await.unwrap();
        assert_eq!(a.find::<person::Entity>().count().await.unwrap(), 1);
        assert_eq!(b.find::<person::Entity>().count().await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_scoped_subquery_filters_within_the_tenant_and_refuses_another_tenants() {
    each_backend(|test| async move {
        let (a, b) = (new_tenant(&test, "a").await, new_tenant(&test, "b").await);
        let acme = add_account(&a, "acme").await;
        add_account(&a, "other").await;
        let ann = add_person(&a, Some(acme.id), "ann", 1).await;
        let b_acme = add_account(&b, "acme").await;
        add_person(&b, Some(b_acme.id), "bob", 1).await;

        let sub = a
            .find::<account::Entity>()
            .filter(account::Column::Name.eq("acme"))
            .subquery(account::Column::Id);
        let found = a
            .find::<person::Entity>()
            .filter_in(person::Column::AccountId, sub)
            .all()
            .await
            .unwrap();
        assert_eq!(found.iter().map(|p| p.id).collect::<Vec<_>>(), [ann.id]);

        let foreign = b.find::<account::Entity>().subquery(account::Column::Id);
        let refused = a
            .find::<person::Entity>()
            .filter_in(person::Column::AccountId, foreign)
            .all()
            .await;
        assert!(
            matches!(refused, Err(Error::TenantMismatch { .. })),
            "{refused:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_keyset_walk_visits_every_row_once_in_key_order() {
    each_backend(|test| async move {
        let (a, b) = (new_tenant(&test, "a").await, new_tenant(&test, "b").await);
        let mut expected = Vec::new();
        for i in 0..23 {
            expected.push(add_person(&a, None, &format!("p{i}"), i % 4).await);
            add_person(&b, None, "noise", i % 4).await;
        }
        expected.sort_by_key(|p| (p.score, p.id));

        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let keyset = Keyset::asc([person::Column::Score, person::Column::Id])
                .after(after.take())
                .limit(5);
            let page = a.find::<person::Entity>().page(keyset).await.unwrap();
            assert!(page.rows.len() <= 5);
            seen.extend(page.rows);
            if !page.has_more {
                break;
            }
            after = page.next;
        }
        assert_eq!(seen, expected);

        let wrong =
            Keyset::asc([person::Column::Score, person::Column::Id]).after(Some(vec![1.into()]));
        assert!(matches!(
            a.find::<person::Entity>().page(wrong).await,
            Err(Error::InvalidKeyset { .. })
        ));
        let desc = a
            .find::<person::Entity>()
            .page(Keyset::desc([person::Column::Score, person::Column::Id]).limit(3))
            .await
            .unwrap();
        assert_eq!(
            desc.rows,
            expected.iter().rev().take(3).cloned().collect::<Vec<_>>()
        );
    })
    .await;
}

#[tokio::test]
async fn a_keyset_walk_over_a_joined_read_visits_every_row_once_with_its_related_row() {
    each_backend(|test| async move {
        let (a, b) = (new_tenant(&test, "a").await, new_tenant(&test, "b").await);
        let acme = add_account(&a, "acme").await;
        let mut expected = Vec::new();
        for i in 0..11 {
            let account = (i % 2 == 0).then_some(acme.id);
            expected.push(add_person(&a, account, &format!("p{i}"), 0).await.id);
            add_person(&b, None, "noise", 0).await;
        }
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let keyset = Keyset::desc([person::Column::Id])
                .after(after.take())
                .limit(4);
            let page = a
                .find::<person::Entity>()
                .also::<account::Entity>()
                .page(keyset)
                .await
                .unwrap();
            for (person, account) in &page.rows {
                assert_eq!(account.as_ref().map(|acc| acc.id), person.account_id);
                seen.push(person.id);
            }
            if !page.has_more {
                break;
            }
            after = page.next;
        }
        expected.reverse();
        assert_eq!(seen, expected);
    })
    .await;
}
