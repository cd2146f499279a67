//! Scoped writes: inserts stamp the tenant, updates and deletes carry it.

use sea_orm::sea_query::{Expr, ExprTrait, IntoCondition, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue, DbErr, EntityTrait, IdenStatic, IntoActiveModel, Iterable,
    PrimaryKeyToColumn, QueryFilter, QueryTrait, Value,
};

use crate::db::ConnRef;
use crate::{Error, Result, TenantId, TenantScoped};

fn tenant_value(tenant: TenantId) -> Value {
    Value::from(tenant.as_uuid())
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
    let column = <A::Entity as TenantScoped>::tenant_column();
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
    on_conflict: Option<OnConflict>,
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
            on_conflict: None,
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
        let tenant_column = <A::Entity as TenantScoped>::tenant_column();
        let target = std::iter::once(tenant_column)
            .chain(keys.into_iter().filter(|k| !same_column(*k, tenant_column)));
        let mut conflict = OnConflict::columns(target);
        conflict.update_columns(
            columns
                .into_iter()
                .filter(|c| !same_column(*c, tenant_column)),
        );
        self.on_conflict = Some(conflict);
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
        Ok(Self::statement(model, self.on_conflict.clone())
            .build(self.conn.backend())
            .to_string())
    }

    /// Runs the insert and returns the stored row.
    pub async fn exec(self) -> Result<<A::Entity as EntityTrait>::Model> {
        let insert = Self::statement(self.model?, self.on_conflict);
        Ok(insert.exec_with_returning(&self.conn.executor()).await?)
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
            .exec_without_returning(&self.conn.executor())
            .await?)
    }
}

/// A scoped update of one row by its primary key.
#[must_use = "an update does nothing until it is executed"]
#[derive(Debug)]
pub struct UpdateOne<'a, A: ActiveModelTrait> {
    conn: ConnRef<'a>,
    tenant: TenantId,
    model: A,
    filter: Vec<sea_orm::Condition>,
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
            model,
            filter: Vec::new(),
        }
    }

    /// An extra condition the row must meet (optimistic concurrency: `version = $n`).
    /// A row that does not meet it is reported as [`Error::NotFound`].
    pub fn filter(mut self, condition: impl IntoCondition) -> Self {
        self.filter.push(condition.into_condition());
        self
    }

    /// The SQL this update runs (without `RETURNING`), or why it would be refused.
    pub fn to_sql(&self) -> Result<String>
    where
        A: Clone,
    {
        let statement = Self::statement(self.tenant, self.model.clone(), self.filter.clone())?;
        Ok(statement.build(self.conn.backend()).to_string())
    }

    /// `UPDATE e SET <Set columns> WHERE tenant_id = $tenant AND <pk> [AND filter] RETURNING *`.
    pub async fn exec(self) -> Result<<A::Entity as EntityTrait>::Model> {
        let statement = Self::statement(self.tenant, self.model, self.filter)?;
        let rows = statement.exec_with_returning(&self.conn.executor()).await?;
        rows.into_iter().next().ok_or(Error::NotFound {
            table: table::<A::Entity>(),
        })
    }

    fn statement(
        tenant: TenantId,
        mut model: A,
        filter: Vec<sea_orm::Condition>,
    ) -> Result<sea_orm::UpdateMany<A::Entity>> {
        let entity = A::Entity::default();
        let tenant_column = <A::Entity as TenantScoped>::tenant_column();
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
        let mut update = <A::Entity as EntityTrait>::update_many()
            .filter(Expr::col((entity, tenant_column)).eq(tenant.as_uuid()));
        for key in <A::Entity as EntityTrait>::PrimaryKey::iter() {
            let column = key.into_column();
            if same_column(column, tenant_column) {
                continue;
            }
            match model.take(column) {
                ActiveValue::Set(value) | ActiveValue::Unchanged(value) => {
                    update = update.filter(Expr::col((entity, column)).eq(value));
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
            return Err(Error::Db(DbErr::Custom(
                "update with no column to set".into(),
            )));
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
        let update = E::update_many()
            .filter(Expr::col((E::default(), E::tenant_column())).eq(tenant.as_uuid()));
        Self {
            conn,
            update,
            error: None,
        }
    }

    fn refuse_tenant_column(&mut self) {
        self.error.get_or_insert(Error::TenantColumnImmutable {
            table: table::<E>(),
        });
    }

    /// `SET column = expr`; the tenant column is refused.
    pub fn col_expr(mut self, column: E::Column, value: impl Into<Expr>) -> Self {
        if same_column(column, E::tenant_column()) {
            self.refuse_tenant_column();
        } else {
            self.update = self.update.col_expr(column, value.into());
        }
        self
    }

    /// `SET` every `Set` column of `model`; a model that sets the tenant column is refused.
    pub fn set<A>(mut self, model: A) -> Self
    where
        A: ActiveModelTrait<Entity = E>,
    {
        if matches!(model.get(E::tenant_column()), ActiveValue::Set(_)) {
            self.refuse_tenant_column();
        } else {
            self.update = self.update.set(model);
        }
        self
    }

    /// Adds a condition, ANDed with the tenant predicate.
    pub fn filter(mut self, condition: impl IntoCondition) -> Self {
        self.update = self.update.filter(condition);
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
        Ok(self.update.exec(&self.conn.executor()).await?.rows_affected)
    }

    /// Runs the update and returns the changed rows.
    pub async fn exec_with_returning(self) -> Result<Vec<E::Model>> {
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(self
            .update
            .exec_with_returning(&self.conn.executor())
            .await?)
    }
}

/// A scoped `DELETE … WHERE tenant_id = $tenant AND …`.
#[must_use = "a delete does nothing until it is executed"]
#[derive(Debug)]
pub struct DeleteMany<'a, E: TenantScoped> {
    conn: ConnRef<'a>,
    delete: sea_orm::DeleteMany<E>,
}

impl<'a, E: TenantScoped> DeleteMany<'a, E> {
    pub(crate) fn new(conn: ConnRef<'a>, tenant: TenantId) -> Self {
        let delete = E::delete_many()
            .filter(Expr::col((E::default(), E::tenant_column())).eq(tenant.as_uuid()));
        Self { conn, delete }
    }

    /// Adds a condition, ANDed with the tenant predicate.
    pub fn filter(mut self, condition: impl IntoCondition) -> Self {
        self.delete = self.delete.filter(condition);
        self
    }

    /// The SQL this delete runs.
    pub fn to_sql(&self) -> String {
        self.delete.clone().build(self.conn.backend()).to_string()
    }

    /// Runs the delete; returns the number of rows deleted.
    pub async fn exec(self) -> Result<u64> {
        Ok(self.delete.exec(&self.conn.executor()).await?.rows_affected)
    }
}
