use domain::accounts::{self, AccountCreate, AccountFilter, AccountPatch};
use domain::pagination::PageRequest;
use serde_json::json;
use uuid::Uuid;

use crate::support::{
    World, assert_not_found, assert_version_mismatch, each_backend, invalid_fields,
};

fn acme() -> AccountCreate {
    AccountCreate {
        name: "Acme".into(),
        domain: Some("ACME.com".into()),
        ..Default::default()
    }
}

async fn names(db: &tenancy::TenantDb, filter: AccountFilter) -> Vec<String> {
    let page = accounts::list(db, &filter, &PageRequest::default())
        .await
        .unwrap();
    page.items.into_iter().map(|a| a.name).collect()
}

#[tokio::test]
async fn an_account_is_created_read_updated_and_soft_deleted() {
    each_backend(|w: World| async move {
        let input = AccountCreate {
            owner_id: Some(w.a_admin.id),
            custom_fields: Some(json!({"tier": "gold", "seats": 3})),
            ..acme()
        };
        let created = accounts::create(&w.a, input).await.unwrap();
        assert_eq!(
            (
                created.name.as_str(),
                created.domain.as_deref(),
                created.owner_id
            ),
            ("Acme", Some("acme.com"), Some(w.a_admin.id))
        );
        assert_eq!((created.version, created.deleted_at), (1, None));
        assert_eq!(created.created_at, created.updated_at);
        assert_eq!(accounts::get(&w.a, created.id).await.unwrap(), created);

        let patch = AccountPatch {
            name: Some("Acme Corp".into()),
            domain: Some(None),
            owner_id: Some(None),
            custom_fields: Some(json!({"seats": null, "region": "emea"})),
        };
        let updated = accounts::update(&w.a, created.id, Some(1), patch)
            .await
            .unwrap();
        assert_eq!(
            (
                updated.name.as_str(),
                updated.domain.as_deref(),
                updated.owner_id
            ),
            ("Acme Corp", None, None)
        );
        assert_eq!(
            serde_json::Value::Object(updated.custom_fields.clone()),
            json!({"tier": "gold", "region": "emea"})
        );
        assert_eq!(updated.version, 2);
        assert!(updated.updated_at > created.updated_at);
        assert_eq!(updated.created_at, created.created_at);

        let unchanged = accounts::update(&w.a, created.id, Some(2), AccountPatch::default())
            .await
            .unwrap();
        assert_eq!(unchanged, updated, "an empty patch writes nothing");

        let tombstone = accounts::delete(&w.a, created.id, Some(2)).await.unwrap();
        assert_eq!(tombstone.version, 3);
        assert_eq!(tombstone.deleted_at, Some(tombstone.updated_at));
        assert_not_found(accounts::get(&w.a, created.id).await, None);
        assert_not_found(
            accounts::update(
                &w.a,
                created.id,
                None,
                AccountPatch {
                    name: Some("x".into()),
                    ..Default::default()
                },
            )
            .await,
            None,
        );
        assert_not_found(accounts::delete(&w.a, created.id, None).await, None);
        assert!(names(&w.a, AccountFilter::default()).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn invalid_account_input_is_rejected_field_by_field_and_nothing_is_written() {
    each_backend(|w| async move {
        let bad = AccountCreate {
            name: "x".repeat(201),
            domain: Some("not a domain".into()),
            owner_id: None,
            custom_fields: Some(json!(["not", "an", "object"])),
        };
        let fields = invalid_fields(accounts::create(&w.a, bad).await);
        assert_eq!(
            fields,
            [
                ("name".into(), "too_long"),
                ("domain".into(), "invalid_domain"),
                ("custom_fields".into(), "not_an_object")
            ]
        );
        let huge = AccountCreate {
            custom_fields: Some(json!({"blob": "x".repeat(16 * 1024)})),
            ..acme()
        };
        assert_eq!(
            invalid_fields(accounts::create(&w.a, huge).await),
            [("custom_fields".into(), "too_large")]
        );
        assert!(names(&w.a, AccountFilter::default()).await.is_empty());

        let account = accounts::create(&w.a, acme()).await.unwrap();
        let patch = AccountPatch {
            name: Some("".into()),
            custom_fields: Some(json!(1)),
            ..Default::default()
        };
        let fields = invalid_fields(accounts::update(&w.a, account.id, None, patch).await);
        assert_eq!(
            fields,
            [
                ("name".into(), "required"),
                ("custom_fields".into(), "not_an_object")
            ]
        );
        let grow = AccountPatch {
            custom_fields: Some(json!({"blob": "x".repeat(16 * 1024)})),
            ..Default::default()
        };
        assert_eq!(
            invalid_fields(accounts::update(&w.a, account.id, None, grow).await),
            [("custom_fields".into(), "too_large")]
        );
        assert_eq!(accounts::get(&w.a, account.id).await.unwrap(), account);
    })
    .await;
}

#[tokio::test]
async fn a_stale_version_changes_nothing_and_reports_the_current_version() {
    each_backend(|w| async move {
        let account = accounts::create(&w.a, acme()).await.unwrap();
        let rename = |name: &str| AccountPatch {
            name: Some(name.into()),
            ..Default::default()
        };
        accounts::update(&w.a, account.id, Some(1), rename("First"))
            .await
            .unwrap();
        assert_version_mismatch(
            accounts::update(&w.a, account.id, Some(1), rename("Second")).await,
            1,
            2,
        );
        assert_version_mismatch(
            accounts::update(&w.a, account.id, Some(1), AccountPatch::default()).await,
            1,
            2,
        );
        assert_version_mismatch(accounts::delete(&w.a, account.id, Some(1)).await, 1, 2);
        let current = accounts::get(&w.a, account.id).await.unwrap();
        assert_eq!(
            (current.name.as_str(), current.version, current.deleted_at),
            ("First", 2, None)
        );
        // Without an expected version, the last writer wins.
        let last = accounts::update(&w.a, account.id, None, rename("Third"))
            .await
            .unwrap();
        assert_eq!(last.version, 3);
    })
    .await;
}

#[tokio::test]
async fn an_owner_must_be_a_live_user_of_the_same_tenant() {
    each_backend(|w| async move {
        assert_not_found(
            accounts::create(
                &w.b,
                AccountCreate {
                    owner_id: Some(w.a_admin.id),
                    ..acme()
                },
            )
            .await,
            Some("owner_id"),
        );
        assert_not_found(
            accounts::create(
                &w.a,
                AccountCreate {
                    owner_id: Some(Uuid::now_v7()),
                    ..acme()
                },
            )
            .await,
            Some("owner_id"),
        );
        let b_account = accounts::create(&w.b, acme()).await.unwrap();
        let steal = AccountPatch {
            owner_id: Some(Some(w.a_admin.id)),
            ..Default::default()
        };
        assert_not_found(
            accounts::update(&w.b, b_account.id, None, steal).await,
            Some("owner_id"),
        );
        assert_eq!(accounts::get(&w.b, b_account.id).await.unwrap(), b_account);
        assert_eq!(names(&w.b, AccountFilter::default()).await, ["Acme"]);
    })
    .await;
}

#[tokio::test]
async fn accounts_filter_by_domain_and_by_name_prefix_ignoring_case() {
    each_backend(|w| async move {
        for (name, domain) in [
            ("Acme", Some("acme.com")),
            ("acme labs", Some("labs.acme.com")),
            ("Globex", None),
            ("100% Acme", None),
            ("A_cme", None),
        ] {
            accounts::create(
                &w.a,
                AccountCreate {
                    name: name.into(),
                    domain: domain.map(Into::into),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        }
        accounts::create(&w.b, acme()).await.unwrap();

        let by_domain = |d: &str| AccountFilter {
            domain: Some(d.into()),
            ..Default::default()
        };
        let by_prefix = |p: &str| AccountFilter {
            name_prefix: Some(p.into()),
            ..Default::default()
        };
        assert_eq!(names(&w.a, by_domain("ACME.com")).await, ["Acme"]);
        assert_eq!(names(&w.a, by_prefix("acm")).await, ["Acme", "acme labs"]);
        assert_eq!(names(&w.a, by_prefix("ACME L")).await, ["acme labs"]);
        assert_eq!(
            names(&w.a, by_prefix("100%")).await,
            ["100% Acme"],
            "% is matched literally"
        );
        assert_eq!(
            names(&w.a, by_prefix("a_")).await,
            ["A_cme"],
            "_ is matched literally"
        );
        assert!(names(&w.a, by_prefix("zzz")).await.is_empty());
        let both = AccountFilter {
            domain: Some("labs.acme.com".into()),
            name_prefix: Some("acme".into()),
        };
        assert_eq!(names(&w.a, both).await, ["acme labs"]);
        assert_eq!(names(&w.b, by_prefix("a")).await, ["Acme"]);
        let bad = accounts::list(&w.a, &by_domain("no"), &PageRequest::default()).await;
        assert_eq!(invalid_fields(bad), [("domain".into(), "invalid_domain")]);
    })
    .await;
}

#[tokio::test]
async fn another_tenant_never_sees_or_changes_an_account() {
    each_backend(|w| async move {
        let account = accounts::create(&w.a, acme()).await.unwrap();
        assert_not_found(accounts::get(&w.b, account.id).await, None);
        let patch = AccountPatch {
            name: Some("Hijacked".into()),
            ..Default::default()
        };
        assert_not_found(
            accounts::update(&w.b, account.id, None, patch.clone()).await,
            None,
        );
        assert_not_found(
            accounts::update(&w.b, account.id, Some(1), patch).await,
            None,
        );
        assert_not_found(accounts::delete(&w.b, account.id, None).await, None);
        assert!(names(&w.b, AccountFilter::default()).await.is_empty());
        let sync = accounts::list(&w.b, &AccountFilter::default(), &PageRequest::sync(None))
            .await
            .unwrap();
        assert!(sync.items.is_empty());
        assert_eq!(accounts::get(&w.a, account.id).await.unwrap(), account);
    })
    .await;
}

#[tokio::test]
async fn operations_compose_in_a_transaction_that_rolls_back_when_dropped() {
    each_backend(|w| async move {
        {
            let txn = w.a.begin().await.unwrap();
            let account = accounts::create(&txn, acme()).await.unwrap();
            let patch = AccountPatch {
                name: Some("Renamed".into()),
                ..Default::default()
            };
            accounts::update(&txn, account.id, Some(1), patch)
                .await
                .unwrap();
            assert_eq!(
                names(&w.a, AccountFilter::default()).await.len(),
                0,
                "not visible outside before commit"
            );
        }
        assert!(
            names(&w.a, AccountFilter::default()).await.is_empty(),
            "dropped means rolled back"
        );

        let txn = w.a.begin().await.unwrap();
        let account = accounts::create(&txn, acme()).await.unwrap();
        txn.commit().await.unwrap();
        assert_eq!(accounts::get(&w.a, account.id).await.unwrap(), account);
    })
    .await;
}
