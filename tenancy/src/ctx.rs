//! Who is asking: the tenant and the actor, built at the edge from a verified credential.

use std::fmt;

use uuid::Uuid;

/// The identifier of one tenant. A newtype so a tenant id is never confused with
/// any other UUID (a user id, an account id) in a function signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Uuid);

impl TenantId {
    /// Wraps a UUID that is known to name a tenant (read from a verified credential
    /// or from the `tenants` table).
    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The underlying UUID, for writing it into a token or a log line.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Who performs the work inside a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A person signed in through the identity provider (JWT `sub`).
    User(Uuid),
    /// A third-party integration authenticated by an API key (the key's id).
    ApiKey(Uuid),
    /// An internal service calling with a service token (the service's name).
    Service(String),
    /// The system itself: seeding, background jobs started by an operator.
    System,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::ApiKey(id) => write!(f, "api_key:{id}"),
            Self::Service(name) => write!(f, "service:{name}"),
            Self::System => f.write_str("system"),
        }
    }
}

/// The tenant context of one request: the tenant every query is scoped to, and the actor.
///
/// Built only by a [`CtxIssuer`](crate::CtxIssuer) — a capability handed out once, with
/// the pool, to the authentication edge — from a verified credential (a checked JWT, a
/// matched API key), never from a path, query string or body. Fields are private: once
/// built, the tenant of a context cannot be changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantCtx {
    tenant: TenantId,
    actor: Actor,
}

impl TenantCtx {
    /// A context for `actor` acting inside `tenant`: only [`CtxIssuer`](crate::CtxIssuer)
    /// and the escape hatch's tenant creation make one.
    pub(crate) fn new(tenant: TenantId, actor: Actor) -> Self {
        Self { tenant, actor }
    }

    /// The tenant every query made with this context is scoped to.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// Who acts.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }
}
