//! The constructor `Unscoped::new` is private to the tenancy crate.
#[path = "../support/entities.rs"]
mod entities;

fn escape(conn: sea_orm::DatabaseConnection) {
    let _forged = tenancy::Unscoped::new(conn);
}

fn main() {}
