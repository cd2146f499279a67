//! Checked entity declarations: every entity is checked once, before its first
//! statement is built, and the tables that pass form the statement guard's catalog.
//!
//! The macros ([`tenant_scoped!`](crate::tenant_scoped) and friends) check what the
//! compiler can; this module checks the rest from the entity's own metadata, so a
//! declaration written by hand (or a derive with odd attributes) cannot slip through:
//! - table and column names are plain identifiers (`[a-z_][a-z0-9_]*`), as rendered —
//!   an `Iden` whose quoted form carries SQL is refused;
//! - every column belongs to the entity's own table and has no `select_as`/`save_as`
//!   rewrite and no database enum type (whose cast names a type by text);
//! - a tenant-owned entity has exactly one column named `tenant_id`, it is the column the
//!   entity names as its tenant column, a `Uuid`, and the first column of the primary key;
//! - the tenant root's tenant column is its `id`, a `Uuid` primary key, and it has no
//!   `tenant_id`; a global entity has no `tenant_id` column (and, at its first statement,
//!   the database confirms it is a base table without one: see `Db`).

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use sea_orm::sea_query::{ColumnType, Expr, IntoIden};
use sea_orm::{ColumnTrait, EntityTrait, IdenStatic, Iterable, PrimaryKeyToColumn};

use crate::entity::{Joinable, Kind};
use crate::guard::{Catalog, TableKind};
use crate::{Error, Result};

/// What the guard needs to know of a table.
#[derive(Debug, Clone)]
struct Table {
    kind: TableKind,
    columns: Arc<[String]>,
    /// Global tables are confirmed against the database's catalog once.
    global: Global,
}

/// Where a global table stands with the database catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Global {
    Pending,
    Confirmed,
    Refused(String),
}

#[derive(Default)]
struct State {
    /// The verdict of each entity type (checked once): the kind it declares, or why its
    /// declaration is refused.
    types: HashMap<TypeId, std::result::Result<TableKind, String>>,
    /// Tables of the entities that passed, by name.
    tables: HashMap<String, Table>,
}

static STATE: LazyLock<RwLock<State>> = LazyLock::new(RwLock::default);

/// The catalog of checked tables, for the statement guard.
pub(crate) struct Registry;

impl Catalog for Registry {
    fn table(&self, name: &str) -> Option<(TableKind, Arc<[String]>)> {
        let state = STATE
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state
            .tables
            .get(name)
            .filter(|t| t.kind != TableKind::Global || t.global == Global::Confirmed)
            .map(|t| (t.kind, Arc::clone(&t.columns)))
    }
}

fn plain(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && name.len() <= 63
}

fn rendered(iden: impl IntoIden) -> String {
    iden.into_iden().inner().into_owned()
}

fn check<E: Joinable>() -> std::result::Result<Table, String> {
    let entity = E::default();
    let table = entity.table_name();
    let table_iden = rendered(entity);
    if !plain(table) || table_iden != table {
        return Err(format!(
            "entity table name {table:?} (rendered {table_iden:?}) is not a plain identifier"
        ));
    }
    if entity.schema_name().is_some() {
        return Err(format!("entity `{table}` names a schema"));
    }
    let mut columns = Vec::new();
    for column in E::Column::iter() {
        let name = column.as_str();
        let shown = rendered(column);
        if !plain(name) || shown != name {
            return Err(format!(
                "column {name:?} of `{table}` (rendered {shown:?}) is not a plain identifier"
            ));
        }
        if rendered(column.entity_name()) != table {
            return Err(format!(
                "column `{name}` claims another table than `{table}`"
            ));
        }
        let plain_col = Expr::col(column.as_column_ref());
        if column.select_as(plain_col.clone()) != plain_col {
            return Err(format!(
                "column `{table}.{name}` rewrites its select (select_as)"
            ));
        }
        let probe = Expr::val(0);
        if column.save_as(probe.clone()) != probe {
            return Err(format!(
                "column `{table}.{name}` rewrites its values (save_as)"
            ));
        }
        if column.enum_type_name().is_some()
            || matches!(column.def().get_column_type(), ColumnType::Enum { .. })
        {
            return Err(format!(
                "column `{table}.{name}` is a database enum (store the text instead)"
            ));
        }
        if columns.iter().any(|c| c == name) {
            return Err(format!("column `{name}` appears twice in `{table}`"));
        }
        columns.push(name.to_owned());
    }
    let key: Vec<&str> = E::PrimaryKey::iter()
        .map(|k| k.into_column().as_str())
        .collect();
    let has_tenant_id = columns.iter().any(|c| c == "tenant_id");
    let kind = match E::KIND {
        Kind::Tenant => {
            let tenant = E::Column::iter()
                .find(|c| c.as_str() == "tenant_id")
                .ok_or_else(|| format!("tenant-owned `{table}` has no `tenant_id` column"))?;
            if !matches!(tenant.def().get_column_type(), ColumnType::Uuid) {
                return Err(format!("`{table}.tenant_id` is not a UUID"));
            }
            if key.first() != Some(&"tenant_id") {
                return Err(format!(
                    "`tenant_id` does not lead the primary key of `{table}` (found {key:?})"
                ));
            }
            TableKind::Tenant
        }
        Kind::Root => {
            if key != ["id"] {
                return Err(format!(
                    "the tenant root `{table}` must be keyed by `id` alone"
                ));
            }
            let id = E::Column::iter().find(|c| c.as_str() == "id");
            if !id.is_some_and(|c| matches!(c.def().get_column_type(), ColumnType::Uuid)) {
                return Err(format!("`{table}.id` is not a UUID"));
            }
            if has_tenant_id {
                return Err(format!(
                    "the tenant root `{table}` has a `tenant_id` column"
                ));
            }
            TableKind::Root
        }
        Kind::Global => {
            if has_tenant_id {
                return Err(format!(
                    "global `{table}` has a `tenant_id` column: declare it tenant-owned"
                ));
            }
            TableKind::Global
        }
    };
    Ok(Table {
        kind,
        columns: columns.into(),
        global: Global::Pending,
    })
}

/// The column of `E` named `name` (the registry has checked it exists).
pub(crate) fn column<E: EntityTrait>(name: &str) -> Result<E::Column> {
    E::Column::iter()
        .find(|c| c.as_str() == name)
        .ok_or_else(|| {
            Error::Refused(format!(
                "`{}` has no `{name}` column",
                E::default().table_name()
            ))
        })
}

/// How strict a kind is: when two entity types declare one table differently, the
/// stricter declaration wins and the other is refused (a tenant table can never be
/// read as global data because some other entity said so first).
fn strictness(kind: TableKind) -> u8 {
    match kind {
        TableKind::Tenant => 2,
        TableKind::Root => 1,
        TableKind::Global => 0,
    }
}

/// Whether entity type `id`, declared as `kind` over `table`, may run statements now.
fn admitted(state: &State, table: &str, kind: TableKind) -> std::result::Result<(), String> {
    match state.tables.get(table) {
        Some(registered) if registered.kind != kind => Err(format!(
            "`{table}` is declared {:?} by another entity; this declaration says {kind:?}",
            registered.kind
        )),
        Some(Table {
            global: Global::Refused(reason),
            ..
        }) => Err(reason.clone()),
        _ => Ok(()),
    }
}

/// Checks entity `E` (once per type) and registers its table; refuses it for good if
/// its declaration breaks a rule, and whenever another entity declares its table with a
/// stricter kind.
pub(crate) fn ensure<E: Joinable>() -> Result<()> {
    let id = TypeId::of::<E>();
    let table = E::default().table_name();
    {
        let state = STATE
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(verdict) = state.types.get(&id) {
            let kind = verdict.clone().map_err(Error::Refused)?;
            return admitted(&state, table, kind).map_err(Error::Refused);
        }
    }
    let checked = check::<E>();
    let mut state = STATE
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let verdict = checked.map(|declared| {
        let kind = declared.kind;
        match state.tables.get_mut(table) {
            None => {
                state.tables.insert(table.to_owned(), declared);
            }
            Some(registered) if registered.kind == kind => {
                let mut columns: Vec<String> = registered.columns.to_vec();
                for column in declared.columns.iter() {
                    if !columns.contains(column) {
                        columns.push(column.clone());
                    }
                }
                registered.columns = columns.into();
            }
            Some(registered) if strictness(kind) > strictness(registered.kind) => {
                *registered = declared;
            }
            Some(_) => {}
        }
        kind
    });
    state.types.insert(id, verdict.clone());
    let outcome = verdict.and_then(|kind| admitted(&state, table, kind));
    if let Err(reason) = &outcome {
        tracing::error!(target: "tenancy::guard", entity = table, %reason, "entity declaration refused");
    }
    outcome.map_err(Error::Refused)
}

/// Global tables not yet confirmed against the database catalog.
pub(crate) fn unconfirmed_global(name: &str) -> bool {
    let state = STATE
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    state
        .tables
        .get(name)
        .is_some_and(|t| t.kind == TableKind::Global && t.global == Global::Pending)
}

/// Records the catalog's answer for a global table: confirmed, or refused for good.
pub(crate) fn confirm_global(name: &str, verdict: std::result::Result<(), String>) {
    let mut state = STATE
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Err(reason) = &verdict {
        tracing::error!(target: "tenancy::guard", table = name, %reason, "global entity refused");
    }
    if let Some(table) = state.tables.get_mut(name) {
        table.global = match verdict {
            Ok(()) => Global::Confirmed,
            Err(reason) => Global::Refused(reason),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::{plain, rendered};

    #[test]
    fn only_plain_identifiers_pass() {
        assert!(plain("people"));
        assert!(plain("api_keys2"));
        assert!(!plain("People"));
        assert!(!plain("people\" WHERE 1=1 --"));
        assert!(!plain("2people"));
        assert!(!plain(""));
        assert_eq!(rendered("people"), "people");
    }
}
