//! Sales: `accounts`, `people` (→ account), `activities` (→ person, user).

use sea_orm_migration::prelude::*;

use crate::m20261122_000001_identity::{Tenants, Users};
use crate::{foreign_key, index};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Accounts {
    Table,
    TenantId,
    Id,
    Name,
    Domain,
    OwnerId,
    CustomFields,
    CreatedAt,
    UpdatedAt,
    Version,
    DeletedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum People {
    Table,
    TenantId,
    Id,
    AccountId,
    FirstName,
    LastName,
    Email,
    Title,
    Phone,
    Stage,
    CreatedAt,
    UpdatedAt,
    Version,
    DeletedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Activities {
    Table,
    TenantId,
    Id,
    PersonId,
    UserId,
    Kind,
    Subject,
    Body,
    OccurredAt,
    CreatedAt,
    UpdatedAt,
    Version,
    DeletedAt,
}

/// `created_at`, `updated_at`, `version`, `deleted_at`: the bookkeeping every
/// mutable row carries.
fn bookkeeping(table: &mut TableCreateStatement, cols: [DynIden; 4]) -> &mut TableCreateStatement {
    let [created_at, updated_at, version, deleted_at] = cols;
    table
        .col(
            ColumnDef::new(created_at)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(updated_at)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(ColumnDef::new(version).big_integer().not_null())
        .col(ColumnDef::new(deleted_at).timestamp_with_time_zone().null())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut accounts = Table::create();
        accounts
            .table(Accounts::Table)
            .col(ColumnDef::new(Accounts::TenantId).uuid().not_null())
            .col(ColumnDef::new(Accounts::Id).uuid().not_null())
            .col(ColumnDef::new(Accounts::Name).string().not_null())
            .col(ColumnDef::new(Accounts::Domain).string().null())
            .col(ColumnDef::new(Accounts::OwnerId).uuid().null())
            .col(
                ColumnDef::new(Accounts::CustomFields)
                    .json_binary()
                    .not_null(),
            );
        bookkeeping(
            &mut accounts,
            [
                Accounts::CreatedAt.into_iden(),
                Accounts::UpdatedAt.into_iden(),
                Accounts::Version.into_iden(),
                Accounts::DeletedAt.into_iden(),
            ],
        )
        .primary_key(Index::create().col(Accounts::TenantId).col(Accounts::Id))
        .foreign_key(&mut foreign_key(
            Accounts::Table,
            Accounts::TenantId,
            Tenants::Table,
            Tenants::Id,
        ))
        .foreign_key(&mut foreign_key(
            Accounts::Table,
            (Accounts::TenantId, Accounts::OwnerId),
            Users::Table,
            (Users::TenantId, Users::Id),
        ));
        manager.create_table(accounts).await?;
        for cols in [
            vec![Accounts::TenantId, Accounts::UpdatedAt, Accounts::Id],
            vec![Accounts::TenantId, Accounts::Domain],
            vec![Accounts::TenantId, Accounts::Name],
        ] {
            manager.create_index(index(Accounts::Table, cols)).await?;
        }

        let mut people = Table::create();
        people
            .table(People::Table)
            .col(ColumnDef::new(People::TenantId).uuid().not_null())
            .col(ColumnDef::new(People::Id).uuid().not_null())
            .col(ColumnDef::new(People::AccountId).uuid().null())
            .col(ColumnDef::new(People::FirstName).string().not_null())
            .col(ColumnDef::new(People::LastName).string().not_null())
            .col(ColumnDef::new(People::Email).string().null())
            .col(ColumnDef::new(People::Title).string().null())
            .col(ColumnDef::new(People::Phone).string().null())
            .col(ColumnDef::new(People::Stage).string().not_null());
        bookkeeping(
            &mut people,
            [
                People::CreatedAt.into_iden(),
                People::UpdatedAt.into_iden(),
                People::Version.into_iden(),
                People::DeletedAt.into_iden(),
            ],
        )
        .primary_key(Index::create().col(People::TenantId).col(People::Id))
        .foreign_key(&mut foreign_key(
            People::Table,
            (People::TenantId, People::AccountId),
            Accounts::Table,
            (Accounts::TenantId, Accounts::Id),
        ));
        manager.create_table(people).await?;
        for cols in [
            vec![People::TenantId, People::UpdatedAt, People::Id],
            vec![People::TenantId, People::AccountId],
            vec![People::TenantId, People::Email],
            vec![People::TenantId, People::Stage],
        ] {
            manager.create_index(index(People::Table, cols)).await?;
        }

        let mut activities = Table::create();
        activities
            .table(Activities::Table)
            .col(ColumnDef::new(Activities::TenantId).uuid().not_null())
            .col(ColumnDef::new(Activities::Id).uuid().not_null())
            .col(ColumnDef::new(Activities::PersonId).uuid().not_null())
            .col(ColumnDef::new(Activities::UserId).uuid().null())
            .col(ColumnDef::new(Activities::Kind).string().not_null())
            .col(ColumnDef::new(Activities::Subject).string().not_null())
            .col(ColumnDef::new(Activities::Body).text().null())
            .col(
                ColumnDef::new(Activities::OccurredAt)
                    .timestamp_with_time_zone()
                    .not_null(),
            );
        bookkeeping(
            &mut activities,
            [
                Activities::CreatedAt.into_iden(),
                Activities::UpdatedAt.into_iden(),
                Activities::Version.into_iden(),
                Activities::DeletedAt.into_iden(),
            ],
        )
        .primary_key(
            Index::create()
                .col(Activities::TenantId)
                .col(Activities::Id),
        )
        .foreign_key(&mut foreign_key(
            Activities::Table,
            (Activities::TenantId, Activities::PersonId),
            People::Table,
            (People::TenantId, People::Id),
        ))
        .foreign_key(&mut foreign_key(
            Activities::Table,
            (Activities::TenantId, Activities::UserId),
            Users::Table,
            (Users::TenantId, Users::Id),
        ));
        manager.create_table(activities).await?;
        for cols in [
            vec![Activities::TenantId, Activities::UpdatedAt, Activities::Id],
            vec![
                Activities::TenantId,
                Activities::PersonId,
                Activities::OccurredAt,
            ],
            vec![Activities::TenantId, Activities::Kind],
            vec![Activities::TenantId, Activities::OccurredAt],
        ] {
            manager.create_index(index(Activities::Table, cols)).await?;
        }

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children first: their foreign keys point at the tables below them.
        for table in [
            Activities::Table.into_iden(),
            People::Table.into_iden(),
            Accounts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
