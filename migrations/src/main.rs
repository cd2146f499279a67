//! `migrations` CLI: applies or reverts the Tenantry schema.
//!
//! Reads `DATABASE_URL` (e.g. `sqlite://data/tenantry.db?mode=rwc` or
//! `postgres://user@host/db`), and takes sea-orm-migration's usual subcommands:
//! `up`, `down`, `status`, `fresh`, `refresh`, `reset`. With no subcommand it
//! applies every pending migration.

use sea_orm_migration::prelude::*;

#[tokio::main]
async fn main() {
    cli::run_cli(migrations::Migrator).await;
}
