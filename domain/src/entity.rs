//! The entities this crate works with (declared in the `entities` crate) and what the
//! domain adds to them: which [`Resource`] errors about each one name.

pub(crate) use entities::{account, activity, api_key, idempotency_key, person, tenant, user};

use crate::error::Resource;

/// A tracked entity (see [`entities::Tracked`]) with the resource its errors name.
pub(crate) trait Tracked: entities::Tracked {
    /// What errors about this entity name.
    const RESOURCE: Resource;
}

impl Tracked for account::Entity {
    const RESOURCE: Resource = Resource::Account;
}
impl Tracked for activity::Entity {
    const RESOURCE: Resource = Resource::Activity;
}
impl Tracked for person::Entity {
    const RESOURCE: Resource = Resource::Person;
}
impl Tracked for user::Entity {
    const RESOURCE: Resource = Resource::User;
}
