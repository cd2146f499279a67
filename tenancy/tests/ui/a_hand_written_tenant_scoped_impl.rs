//! The opt-in traits are sealed: only the crate's macros implement them.
#[path = "../support/entities.rs"]
mod entities;
use entities::*;


impl tenancy::TenantScoped for plain::Entity {
    fn tenant_column() -> plain::Column {
        plain::Column::Id
    }
}

fn main() {}
