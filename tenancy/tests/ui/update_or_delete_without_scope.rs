//! Unscoped UPDATE and DELETE statements cannot be executed on a tenant handle.
#[path = "../support/entities.rs"]
mod entities;
use entities::*;

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, EntityTrait};

async fn leak(db: &tenancy::TenantDb, row: person::ActiveModel) {
    let _ = person::Entity::update_many().col_expr(person::Column::Score, Expr::value(0)).exec(db).await;
    let _ = person::Entity::delete_many().exec(db).await;
    let _ = row.delete(db).await;
}

fn main() {}
