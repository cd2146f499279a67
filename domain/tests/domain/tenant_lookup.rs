//! `identity::find_tenant_by_slug`: the operator's cross-tenant lookup.

use domain::identity;
use tenancy::TenantHandle;

use crate::support::each_backend;

#[tokio::test]
async fn a_tenant_is_found_by_its_exact_slug_and_an_unknown_slug_finds_nothing() {
    each_backend(|w| async move {
        let unscoped = &w.test.connected.unscoped;
        let a = identity::find_tenant_by_slug(unscoped, "tenant-a")
            .await
            .unwrap()
            .expect("tenant A is found");
        assert_eq!(a, identity::get_tenant(&w.a).await.unwrap());
        let b = identity::find_tenant_by_slug(unscoped, "tenant-b")
            .await
            .unwrap()
            .expect("tenant B is found");
        assert_eq!(b.id, w.b.tenant());

        for unknown in [
            "tenant-c",
            "tenant",
            "Tenant-A",
            " tenant-a",
            "tenant-a%",
            "",
        ] {
            let found = identity::find_tenant_by_slug(unscoped, unknown)
                .await
                .unwrap();
            assert_eq!(found, None, "{unknown:?} names no tenant");
        }
    })
    .await;
}
