//! Scoped writes: inserts stamp the tenant, updates and deletes carry it.

use sea_orm::sea_query::{Condition, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, EntityTrait, IdenStatic, IntoActiveModel, Iterable,
    PrimaryKeyToColumn, QueryFilter, QueryTrait, Value as SeaValue,
};

use crate::conn::ConnRef;
use crate::expr::{Cond, Value, condition};
use crate::registry::{column, ensure};
use crate::select::tenant_predicate;
use crate::{Error, Result, TenantId, TenantScoped};

fn tenant_value(tenant: TenantId) -> SeaValue {
    SeaValue::from(tenant.as_uuid())
}

/// The checked tenant column of `E`: the registry has verified its declaration.
fn tenant_column<E: TenantScoped>() -> Result<E::Column> {
    ensure::<E>()?;
    column::<E>("tenant_id")
}

/// `tenant_id = $tenant` on `E`'s own table.
fn scope<E: TenantScoped>(tenant: TenantId) -> Expr {
    tenant_predicate(E::default().table_name(), "tenant_id", tenant)
}

/// Sets `column` of `model` to `value`, refusing a value of the wrong type.
fn set_checked<A: ActiveModelTrait>(
    model: &mut A,
    column: <A::Entity as EntityTrait>::Column,
    value: Value,
) -> Result<()> {
    model
        .try_set(column, value.into_inner())
        .map_err(|_| Error::InvalidValue {
            table: table::<A::Entity>(),
            column: column.as_str().to_owned(),
        })
}

fn table<E: EntityTrait>() -> &'static str {
    E::default().table_name()
}

fn same_column<C: IdenStatic>(a: C, b: C) -> bool {
    a.as_str() == b.as_str()
}

/// Sets the tenant column of a row to be inserted; refuses a row that names another tenant.
fn stamp<A>(mut model: A, tenant: TenantId) -> Result<A>
where
    A: ActiveModelTrait,
    A::Entity: TenantScoped,
{
    let column = tenant_column::<A::Entity>()?;
    let want = tenant_value(tenant);
    match model.get(column) {
        ActiveValue::NotSet => {}
        ActiveValue::Set(found) | ActiveValue::Unchanged(found) if found != want => {
            return Err(Error::TenantMismatch {
                expected: tenant,
                found: format!("{found:?}"),
            });
        }
        ActiveValue::Set(_) | ActiveValue::Unchanged(_) => {}
    }
    model.set(column, want);
    Ok(model)
}

/// A scoped `INSERT … RETURNING *` of one row.
#[must_use = "an insert does nothing until it is executed"]
#[derive(Debug)]
pub struct Insert<'a, A: ActiveModelTrait> {
    conn: ConnRef<'a>,
    model: Result<A>,
    on_conflict: Result<Option<OnConflict>>,
}

impl<'a, A> Insert<'a, A>
where
    A: ActiveModelTrait + Send,
    A::Entity: TenantScoped,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
{
    pub(crate) fn new(conn: ConnRef<'a>, tenant: TenantId, model: A) -> Self {
        Self {
            conn,
            model: stamp(model, tenant),
            on_conflict: Ok(None),
        }
    }

    /// Makes it an upsert: on a conflict of `(tenant_id, keys…)` — the tenant column is
    /// always part of the conflict target — update `columns` (never the tenant column)
    /// to the proposed values.
    pub fn on_conflict_update(
        mut self,
        keys: impl IntoIterator<Item = <A::Entity as EntityTrait>::Column>,
        columns: impl IntoIterator<Item = <A::Entity as EntityTrait>::Column>,
    ) -> Self {
        self.on_conflict = tenant_column::<A::Entity>().map(|tenant_column| {
            let target = std::iter::once(tenant_column)
                .chain(keys.into_iter().filter(|k| !same_column(*k, tenant_column)));
            let mut conflict = OnConflict::columns(target);
            conflict.update_columns(
                columns
                    .into_iter()
                    .filter(|c| !same_column(*c, tenant_column)),
            );
            Some(conflict)
        });
        self
    }

    fn statement(model: A, on_conflict: Option<OnConflict>) -> sea_orm::Insert<A> {
        let insert = <A::Entity as EntityTrait>::insert(model);
        match on_conflict {
            Some(conflict) => insert.on_conflict(conflict),
            None => insert,
        }
    }

    /// The SQL this insert runs (without `RETURNING`), or why it would be refused.
    pub fn to_sql(&self) -> Result<String>
    where
        A: Clone,
    {
        let model = self.model.as_ref().map_err(Error::clone_refusal)?.clone();
        let on_conflict = self
            .on_conflict
            .as_ref()
            .map_err(Error::clone_refusal)?
            .clone();
        Ok(Self::statement(model, on_conflict)
            .build(self.conn.backend())
            .to_string())
    }

    /// Runs the insert and returns the stored row.
    pub async fn exec(self) -> Result<<A::Entity as EntityTrait>::Model> {
        let insert = Self::statement(self.model?, self.on_conflict?);
        Ok(insert.exec_with_returning(&self.conn.exec()).await?)
    }
}

/// A scoped multi-row `INSERT`.
#[must_use = "an insert does nothing until it is executed"]
#[derive(Debug)]
pub struct InsertMany<'a, A: ActiveModelTrait> {
    conn: ConnRef<'a>,
    models: Result<Vec<A>>,
}

impl<'a, A> InsertMany<'a, A>
where
    A: ActiveModelTrait + Send,
    A::Entity: TenantScoped,
{
    pub(crate) fn new(
        conn: ConnRef<'a>,
        tenant: TenantId,
        models: impl IntoIterator<Item = A>,
    ) -> Self {
        let models = models.into_iter().map(|m| stamp(m, tenant)).collect();
        Self { conn, models }
    }

    /// Runs the insert (nothing is written if any row names another tenant) and returns
    /// the number of rows inserted.
    pub async fn exec(self) -> Result<u64> {
        let models = self.models?;
        if models.is_empty() {
            return Ok(0);
        }
        Ok(<A::Entity as EntityTrait>::insert_many(models)
            .exec_without_returning(&self.conn.exec())
            .await?)
    }
}

/// A scoped update of one row by its primary key.
#[must_use = "an update does nothing until it is executed"]
#[derive(Debug)]
pub struct UpdateOne<'a, A: ActiveModelTrait> {
    conn: ConnRef<'a>,
    tenant: TenantId,
    model: Result<A>,
    filter: Vec<Condition>,
}

impl<'a, A> UpdateOne<'a, A>
where
    A: ActiveModelTrait + Send,
    A::Entity: TenantScoped,
{
    pub(crate) fn new(conn: ConnRef<'a>, tenant: TenantId, model: A) -> Self {
        Self {
            conn,
            tenant,
            model: Ok(model),
            filter: Vec::new(),
        }
    }

    /// An extra condition the row must meet (optimistic concurrency: `version = $n`).
    /// A row that does not meet it is reported as [`Error::NotFound`].
    pub fn filter(mut self, cond: Cond<<A::Entity as EntityTrait>::Column>) -> Self {
        self.filter.push(condition(cond));
        self
    }

    /// Sets one more column of the row (a key column to find it by, or a value to write).
    /// A value of the wrong type is refused before any SQL runs.
    pub fn set(
        mut self,
        column: <A::Entity as EntityTrait>::Column,
        value: impl Into<Value>,
    ) -> Self {
        if let Ok(model) = &mut self.model
            && let Err(error) = set_checked(model, column, value.into())
        {
            self.model = Err(error);
        }
        self
    }

    /// The SQL this update runs (without `RETURNING`), or why it would be refused.
    pub fn to_sql(&self) -> Result<String>
    where
        A: Clone,
    {
        let model = self.model.as_ref().map_err(Error::clone_refusal)?.clone();
        let statement = Self::statement(self.tenant, model, self.filter.clone())?;
        Ok(statement.build(self.conn.backend()).to_string())
    }

    /// `UPDATE e SET <Set columns> WHERE tenant_id = $tenant AND <pk> [AND filter] RETURNING *`.
    pub async fn exec(self) -> Result<<A::Entity as EntityTrait>::Model> {
        let statement = Self::statement(self.tenant, self.model?, self.filter)?;
        let rows = statement.exec_with_returning(&self.conn.exec()).await?;
        rows.into_iter().next().ok_or(Error::NotFound {
            table: table::<A::Entity>(),
        })
    }

    fn statement(
        tenant: TenantId,
        mut model: A,
        filter: Vec<Condition>,
    ) -> Result<sea_orm::UpdateMany<A::Entity>> {
        let tenant_column = tenant_column::<A::Entity>()?;
        match model.get(tenant_column) {
            ActiveValue::Set(found) if found != tenant_value(tenant) => {
                return Err(Error::TenantColumnImmutable {
                    table: table::<A::Entity>(),
                });
            }
            ActiveValue::Unchanged(found) if found != tenant_value(tenant) => {
                return Err(Error::NotFound {
                    table: table::<A::Entity>(),
                });
            }
            _ => model.not_set(tenant_column),
        }
        let mut update =
            <A::Entity as EntityTrait>::update_many().filter(scope::<A::Entity>(tenant));
        for key in <A::Entity as EntityTrait>::PrimaryKey::iter() {
            let column = key.into_column();
            if same_column(column, tenant_column) {
                continue;
            }
            match model.take(column) {
                ActiveValue::Set(value) | ActiveValue::Unchanged(value) => {
                    update = update.filter(Expr::col(column.as_column_ref()).eq(value));
                }
                ActiveValue::NotSet => {
                    return Err(Error::MissingPrimaryKey {
                        table: table::<A::Entity>(),
                    });
                }
            }
        }
        for condition in filter {
            update = update.filter(condition);
        }
        if !model.is_changed() {
            return Err(Error::NothingToUpdate {
                table: table::<A::Entity>(),
            });
        }
        Ok(update.set(model))
    }
}

/// A scoped `UPDATE … WHERE tenant_id = $tenant AND …` of many rows.
#[must_use = "an update does nothing until it is executed"]
#[derive(Debug)]
pub struct UpdateMany<'a, E: TenantScoped> {
    conn: ConnRef<'a>,
    update: sea_orm::UpdateMany<E>,
    error: Option<Error>,
}

impl<'a, E: TenantScoped> UpdateMany<'a, E> {
    pub(crate) fn new(conn: ConnRef<'a>, tenant: TenantId) -> Self {
        Self {
            conn,
            update: E::update_many().filter(scope::<E>(tenant)),
            error: ensure::<E>().err(),
        }
    }

    fn refuse_tenant_column(&mut self) {
        self.error.get_or_insert(Error::TenantColumnImmutable {
            table: table::<E>(),
        });
    }

    /// `SET column = $value`; the tenant column is refused.
    pub fn set(mut self, column: E::Column, value: impl Into<Value>) -> Self {
        if column.as_str() == "tenant_id" {
            self.refuse_tenant_column();
        } else {
            self.update = self
                .update
                .col_expr(column, Expr::val(value.into().into_inner()));
        }
        self
    }

    /// `SET column = column + $by`: a counter (a row version) moved forward in the same
    /// statement, whatever each row holds; the tenant column is refused.
    pub fn increment(mut self, column: E::Column, by: i64) -> Self {
        if column.as_str() == "tenant_id" {
            self.refuse_tenant_column();
        } else {
            self.update = self.update.col_expr(column, Expr::col(column).add(by));
        }
        self
    }

    /// `SET` every `Set` column of `model`; a model that sets the tenant column is refused.
    pub fn set_model<A>(mut self, model: A) -> Self
    where
        A: ActiveModelTrait<Entity = E>,
    {
        match tenant_column::<E>() {
            Ok(column) if matches!(model.get(column), ActiveValue::Set(_)) => {
                self.refuse_tenant_column();
            }
            Ok(_) => self.update = self.update.set(model),
            Err(error) => {
                self.error.get_or_insert(error);
            }
        }
        self
    }

    /// Adds a condition, ANDed with the tenant predicate.
    pub fn filter(mut self, cond: Cond<E::Column>) -> Self {
        self.update = self.update.filter(condition(cond));
        self
    }

    /// The SQL this update runs, or why it would be refused.
    pub fn to_sql(&self) -> Result<String> {
        match &self.error {
            Some(error) => Err(error.clone_refusal()),
            None => Ok(self.update.clone().build(self.conn.backend()).to_string()),
        }
    }

    /// Runs the update; returns the number of rows changed.
    pub async fn exec(self) -> Result<u64> {
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(self.update.exec(&self.conn.exec()).await?.rows_affected)
    }

    /// Runs the update and returns the changed rows.
    pub async fn exec_with_returning(self) -> Result<Vec<E::Model>> {
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(self.update.exec_with_returning(&self.conn.exec()).await?)
    }
}

/// A scoped `DELETE … WHERE tenant_id = $tenant AND …`.
#[must_use = "a delete does nothing until it is executed"]
#[derive(Debug)]
pub struct DeleteMany<'a, E: TenantScoped> {
    conn: ConnRef<'a>,
    delete: sea_orm::DeleteMany<E>,
    error: Option<Error>,
}

impl<'a, E: TenantScoped> DeleteMany<'a, E> {
    pub(crate) fn new(conn: ConnRef<'a>, tenant: TenantId) -> Self {
        Self {
            conn,
            delete: E::delete_many().filter(scope::<E>(tenant)),
            error: ensure::<E>().err(),
        }
    }

    /// Adds a condition, ANDed with the tenant predicate.
    pub fn filter(mut self, cond: Cond<E::Column>) -> Self {
        self.delete = self.delete.filter(condition(cond));
        self
    }

    /// The SQL this delete runs.
    pub fn to_sql(&self) -> String {
        self.delete.clone().build(self.conn.backend()).to_string()
    }

    /// Runs the delete; returns the number of rows deleted.
    pub async fn exec(self) -> Result<u64> {
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(self.delete.exec(&self.conn.exec()).await?.rows_affected)
    }
}
