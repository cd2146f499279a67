use domain::Error;
use domain::identity::{self, ApiKeyCreate, Plan, Role, TenantCreate, UserCreate};
use domain::pagination::PageRequest;
use tenancy::TenantHandle;
use uuid::Uuid;

use crate::support::{assert_not_found, each_backend, invalid_fields};

fn key(prefix: &str) -> ApiKeyCreate {
    ApiKeyCreate {
        name: "CRM sync".into(),
        prefix: prefix.into(),
        secret_hash: format!("hash-of-{prefix}"),
        scopes: vec!["people:read".into(), "people:write".into()],
        created_by: None,
    }
}

#[tokio::test]
async fn a_new_tenant_has_its_admin_and_each_handle_reads_only_its_own_tenant() {
    each_backend(|w| async move {
        let a = identity::get_tenant(&w.a).await.unwrap();
        let b = identity::get_tenant(&w.b).await.unwrap();
        assert_eq!((a.slug.as_str(), a.plan), ("tenant-a", Plan::Free));
        assert_eq!(a.id, w.a.tenant());
        assert_eq!(b.id, w.b.tenant());
        assert_eq!(w.a_admin.role, Role::Admin);
        assert_eq!(w.a_admin.email, "admin@tenant-a.example");
        assert_eq!(w.a_admin.version, 1);
        assert_eq!(
            identity::get_user(&w.a, w.a_admin.id).await.unwrap(),
            w.a_admin
        );
    })
    .await;
}

#[tokio::test]
async fn a_taken_slug_is_a_conflict_and_invalid_tenant_input_writes_nothing() {
    each_backend(|w| async move {
        let unscoped = &w.test.connected.unscoped;
        let taken = TenantCreate {
            slug: "tenant-a".into(),
            name: "Again".into(),
            plan: Some(Plan::Team),
            admin_email: "x@example.com".into(),
            admin_name: "X".into(),
        };
        let result = identity::create_tenant(unscoped, taken).await;
        assert!(
            matches!(result, Err(Error::Conflict { field: "slug", .. })),
            "{result:?}"
        );

        let invalid = TenantCreate {
            slug: "No Slug".into(),
            name: " ".into(),
            plan: None,
            admin_email: "nope".into(),
            admin_name: "Admin".into(),
        };
        let fields = invalid_fields(identity::create_tenant(unscoped, invalid).await);
        assert_eq!(
            fields,
            [
                ("slug".into(), "invalid_slug"),
                ("name".into(), "required"),
                ("admin_email".into(), "invalid_email")
            ]
        );
        // Nothing was written: the slug that failed the conflict is still only A's, and a
        // valid tenant can now be created with fresh values.
        let ok = TenantCreate {
            slug: "tenant-c".into(),
            name: "C".into(),
            plan: Some(Plan::Enterprise),
            admin_email: "Boss@C.example".into(),
            admin_name: "Boss".into(),
        };
        let created = identity::create_tenant(unscoped, ok).await.unwrap();
        assert_eq!(created.tenant.plan, Plan::Enterprise);
        assert_eq!(created.admin.email, "boss@c.example");
    })
    .await;
}

#[tokio::test]
async fn users_are_created_read_and_listed_within_their_tenant_only() {
    each_backend(|w| async move {
        let ann = identity::create_user(
            &w.a,
            UserCreate {
                email: "Ann@A.example".into(),
                name: " Ann ".into(),
                role: Role::Member,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (ann.email.as_str(), ann.name.as_str(), ann.version),
            ("ann@a.example", "Ann", 1)
        );
        assert_eq!(ann.created_at, ann.updated_at);
        assert_eq!(identity::get_user(&w.a, ann.id).await.unwrap(), ann);

        let listed = identity::list_users(&w.a, &PageRequest::default())
            .await
            .unwrap();
        assert_eq!(
            listed.items.iter().map(|u| u.id).collect::<Vec<_>>(),
            [w.a_admin.id, ann.id]
        );
        let theirs = identity::list_users(&w.b, &PageRequest::default())
            .await
            .unwrap();
        assert_eq!(
            theirs.items.iter().map(|u| u.id).collect::<Vec<_>>(),
            [w.b_admin.id]
        );
        assert_not_found(identity::get_user(&w.b, ann.id).await, None);
        assert_not_found(identity::get_user(&w.a, Uuid::now_v7()).await, None);
    })
    .await;
}

#[tokio::test]
async fn a_user_email_is_unique_within_a_tenant_ignoring_case_but_free_in_another() {
    each_backend(|w| async move {
        let user = |email: &str| UserCreate {
            email: email.into(),
            name: "Sam".into(),
            role: Role::Member,
        };
        identity::create_user(&w.a, user("sam@example.com"))
            .await
            .unwrap();
        let again = identity::create_user(&w.a, user("SAM@example.com")).await;
        assert!(
            matches!(again, Err(Error::Conflict { field: "email", .. })),
            "{again:?}"
        );
        identity::create_user(&w.b, user("sam@example.com"))
            .await
            .unwrap();

        let fields = invalid_fields(
            identity::create_user(
                &w.a,
                UserCreate {
                    email: "sam".into(),
                    name: "".into(),
                    role: Role::Admin,
                },
            )
            .await,
        );
        assert_eq!(
            fields,
            [
                ("email".into(), "invalid_email"),
                ("name".into(), "required")
            ]
        );
        assert_eq!(
            identity::list_users(&w.a, &PageRequest::default())
                .await
                .unwrap()
                .items
                .len(),
            2
        );
    })
    .await;
}

#[tokio::test]
async fn an_api_key_is_stored_listed_found_by_prefix_touched_and_revoked() {
    each_backend(|w| async move {
        let unscoped = &w.test.connected.unscoped;
        let created = identity::create_api_key(
            &w.a,
            ApiKeyCreate {
                created_by: Some(w.a_admin.id),
                ..key("tnt_a1")
            },
        )
        .await
        .unwrap();
        assert_eq!(created.scopes, ["people:read", "people:write"]);
        assert_eq!((created.last_used_at, created.revoked_at), (None, None));
        assert_eq!(
            identity::list_api_keys(&w.a).await.unwrap(),
            std::slice::from_ref(&created)
        );

        let found = identity::find_api_key_by_prefix(unscoped, "tnt_a1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.tenant_id, found.key_id, found.revoked),
            (w.a.tenant(), created.id, false)
        );
        assert_eq!(found.secret_hash, "hash-of-tnt_a1");
        assert_eq!(found.scopes, created.scopes);
        assert_eq!(
            identity::find_api_key_by_prefix(unscoped, "tnt_zz")
                .await
                .unwrap(),
            None
        );

        identity::touch_api_key_last_used(&w.a, created.id)
            .await
            .unwrap();
        let first_use = identity::list_api_keys(&w.a).await.unwrap()[0].last_used_at;
        assert!(first_use.is_some());
        identity::touch_api_key_last_used(&w.a, created.id)
            .await
            .unwrap();
        assert_eq!(
            identity::list_api_keys(&w.a).await.unwrap()[0].last_used_at,
            first_use,
            "written at most once a minute"
        );

        let revoked = identity::revoke_api_key(&w.a, created.id).await.unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(
            identity::revoke_api_key(&w.a, created.id).await.unwrap(),
            revoked,
            "revoking twice changes nothing"
        );
        assert!(
            identity::find_api_key_by_prefix(unscoped, "tnt_a1")
                .await
                .unwrap()
                .unwrap()
                .revoked
        );
        assert_not_found(identity::revoke_api_key(&w.a, Uuid::now_v7()).await, None);
    })
    .await;
}

#[tokio::test]
async fn another_tenant_can_neither_list_revoke_touch_nor_attribute_an_api_key() {
    each_backend(|w| async move {
        let a_key = identity::create_api_key(&w.a, key("tnt_a1")).await.unwrap();
        assert!(identity::list_api_keys(&w.b).await.unwrap().is_empty());
        assert_not_found(identity::revoke_api_key(&w.b, a_key.id).await, None);
        identity::touch_api_key_last_used(&w.b, a_key.id)
            .await
            .unwrap();
        let a_keys = identity::list_api_keys(&w.a).await.unwrap();
        assert_eq!((a_keys[0].revoked_at, a_keys[0].last_used_at), (None, None));

        let attributed = identity::create_api_key(
            &w.b,
            ApiKeyCreate {
                created_by: Some(w.a_admin.id),
                ..key("tnt_b1")
            },
        )
        .await;
        assert_not_found(attributed, Some("created_by"));
        assert!(identity::list_api_keys(&w.b).await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn an_api_key_prefix_is_unique_across_tenants_and_bad_keys_are_rejected() {
    each_backend(|w| async move {
        identity::create_api_key(&w.a, key("tnt_same"))
            .await
            .unwrap();
        let clash = identity::create_api_key(&w.b, key("tnt_same")).await;
        assert!(
            matches!(
                clash,
                Err(Error::Conflict {
                    field: "prefix",
                    ..
                })
            ),
            "{clash:?}"
        );

        let bad = ApiKeyCreate {
            name: "".into(),
            prefix: "has space".into(),
            secret_hash: "".into(),
            scopes: vec!["people:read".into(), "People Write".into()],
            created_by: None,
        };
        let fields = invalid_fields(identity::create_api_key(&w.b, bad).await);
        assert_eq!(
            fields,
            [
                ("name".into(), "required"),
                ("prefix".into(), "invalid_format"),
                ("secret_hash".into(), "invalid_format"),
                ("scopes[1]".into(), "invalid_scope"),
            ]
        );
        assert!(identity::list_api_keys(&w.b).await.unwrap().is_empty());
    })
    .await;
}
