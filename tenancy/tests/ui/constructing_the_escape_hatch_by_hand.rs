//! `Unscoped` is created only by `Db::connect`: its fields and constructor are private.
#[path = "../support/entities.rs"]
mod entities;

fn escape(conn: sea_orm::DatabaseConnection) {
    let _forged = tenancy::Unscoped { conn };
}

fn main() {}
