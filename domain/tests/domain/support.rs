//! A fresh migrated database per test with two tenants, A and B, on every backend.

use std::future::Future;

use domain::Error;
use domain::identity::{self, NewTenant, TenantCreate, User};
use tenancy::testing::{Backend, TestDb};
use tenancy::{Actor, TenantDb};

/// One test's world: a fresh database and two tenants, each with its first admin.
pub struct World {
    pub test: TestDb,
    /// Tenant A's handle (acting as A's admin).
    pub a: TenantDb,
    /// Tenant B's handle (acting as B's admin).
    pub b: TenantDb,
    pub a_admin: User,
    pub b_admin: User,
}

/// A closure `|w| async move { … w.a … }` captures only the fields its body uses, and
/// drops the rest — the database — before the test runs. A `Drop` impl forbids that
/// partial capture, so the whole world lives as long as the test body.
impl Drop for World {
    fn drop(&mut self) {}
}

async fn tenant(test: &TestDb, slug: &str) -> (TenantDb, User) {
    let NewTenant { tenant, admin } = identity::create_tenant(
        &test.connected.unscoped,
        TenantCreate {
            slug: slug.into(),
            name: format!("Tenant {slug}"),
            plan: None,
            admin_email: format!("admin@{slug}.example"),
            admin_name: "Admin".into(),
        },
    )
    .await
    .expect("create tenant");
    let db = test.db().tenant(
        &test
            .connected
            .issuer
            .issue(tenant.id, Actor::User(admin.id)),
    );
    (db, admin)
}

async fn world(backend: &Backend) -> World {
    let test = TestDb::new(backend).await.expect("fresh database");
    migrations::up(&test.raw).await.expect("migrate");
    let (a, a_admin) = tenant(&test, "tenant-a").await;
    let (b, b_admin) = tenant(&test, "tenant-b").await;
    World {
        test,
        a,
        b,
        a_admin,
        b_admin,
    }
}

/// Runs `f` once per configured backend, each time on a fresh world.
pub async fn each_backend<F, Fut>(f: F)
where
    F: Fn(World) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in tenancy::testing::backends() {
        eprintln!("backend: {backend}");
        f(world(&backend).await).await;
    }
}

/// The `(field, code)` pairs of a validation error; panics on any other result.
pub fn invalid_fields<T: std::fmt::Debug>(result: Result<T, Error>) -> Vec<(String, &'static str)> {
    match result {
        Err(Error::Validation(errors)) => errors.into_iter().map(|e| (e.field, e.code)).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

/// Asserts `result` is `NotFound` (with the given reference field, if any).
#[track_caller]
pub fn assert_not_found<T: std::fmt::Debug>(result: Result<T, Error>, field: Option<&str>) {
    match result {
        Err(Error::NotFound { field: found, .. }) => {
            assert_eq!(found, field, "not found, on the wrong field")
        }
        other => panic!("expected not found, got {other:?}"),
    }
}

/// Asserts `result` is a version mismatch reporting `current`.
#[track_caller]
pub fn assert_version_mismatch<T: std::fmt::Debug>(
    result: Result<T, Error>,
    expected: i64,
    current: i64,
) {
    match result {
        Err(Error::VersionMismatch {
            expected: e,
            current: c,
            ..
        }) => assert_eq!((e, c), (expected, current)),
        other => panic!("expected a version mismatch, got {other:?}"),
    }
}
