//! Class D: make a context for a tenant of our choosing.
use tenancy::{Actor, TenantCtx, TenantId};

fn context_for(victim: uuid::Uuid) -> TenantCtx {
    TenantCtx::new(TenantId::from_uuid(victim), Actor::System)
}

fn main() {}
