//! Scoped reads: [`Scoped`] and the joined readers built from it.

use std::pin::Pin;

use futures_util::{Stream, StreamExt, TryStreamExt};
use sea_orm::sea_query::{
    Condition, Expr, ExprTrait, IntoCondition, IntoIden, JoinType, Order, SelectStatement,
};
use sea_orm::{
    ColumnTrait, EntityTrait, ModelTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Related, Select, SelectTwo, SelectTwoMany, Value,
};

use crate::db::{ConnKind, ConnRef};
use crate::{Error, Joinable, Result, TenantId};

/// A boxed stream of scoped rows.
pub type RowStream<'a, M> = Pin<Box<dyn Stream<Item = Result<M>> + Send + 'a>>;

/// A read of entity `E`, already restricted to one tenant.
///
/// Built by [`TenantHandle::find`](crate::TenantHandle::find); borrows its handle, so
/// it can neither outlive it nor run on another one. It deliberately does not
/// implement sea-orm's `QueryFilter`/`QuerySelect`: there is no raw `join` or
/// `into_query` to take the tenant predicate off.
#[must_use = "a query does nothing until it is executed"]
pub struct Scoped<'a, E: EntityTrait> {
    conn: ConnRef<'a>,
    tenant: TenantId,
    select: Select<E>,
    order: Vec<(E::Column, Order)>,
    limit: Option<u64>,
    offset: Option<u64>,
    error: Option<Error>,
}

impl<E: EntityTrait> std::fmt::Debug for Scoped<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("tenant", &self.tenant)
            .field("sql", &self.to_sql())
            .finish()
    }
}

impl<'a, E: EntityTrait> Scoped<'a, E> {
    pub(crate) fn new(conn: ConnRef<'a>, tenant: TenantId, tenant_column: E::Column) -> Self {
        // The tenant predicate is the first condition; sea-query ANDs every later
        // `filter` onto it (an `any` condition is nested, never merged).
        let select =
            E::find().filter(Expr::col((E::default(), tenant_column)).eq(tenant.as_uuid()));
        Self {
            conn,
            tenant,
            select,
            order: Vec::new(),
            limit: None,
            offset: None,
            error: None,
        }
    }

    /// Adds a condition, ANDed with the tenant predicate and earlier filters.
    pub fn filter(mut self, condition: impl IntoCondition) -> Self {
        self.select = self.select.filter(condition);
        self
    }

    /// Orders by a column of `E` (applied in call order).
    pub fn order_by(mut self, column: E::Column, order: Order) -> Self {
        self.order.push((column, order));
        self
    }

    /// `ORDER BY column ASC`.
    pub fn order_by_asc(self, column: E::Column) -> Self {
        self.order_by(column, Order::Asc)
    }

    /// `ORDER BY column DESC`.
    pub fn order_by_desc(self, column: E::Column) -> Self {
        self.order_by(column, Order::Desc)
    }

    /// `LIMIT n`.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// `OFFSET n` (costs grow with `n`; prefer [`page`](Self::page)).
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }

    /// `INNER JOIN r ON <relation> AND r.tenant_id = $tenant`.
    pub fn join<R>(self) -> Self
    where
        R: Joinable,
        E: Related<R>,
    {
        self.join_relation::<E, R>(JoinType::InnerJoin)
    }

    /// `LEFT JOIN r ON <relation> AND r.tenant_id = $tenant`.
    pub fn left_join<R>(self) -> Self
    where
        R: Joinable,
        E: Related<R>,
    {
        self.join_relation::<E, R>(JoinType::LeftJoin)
    }

    /// `INNER JOIN r ON <f→r relation> AND r.tenant_id = $tenant`, from an entity `F`
    /// joined earlier: the second hop of a many-to-many through a junction.
    pub fn join_from<F, R>(self) -> Self
    where
        F: Joinable + Related<R>,
        R: Joinable,
    {
        self.join_relation::<F, R>(JoinType::InnerJoin)
    }

    fn join_relation<F, R>(mut self, join: JoinType) -> Self
    where
        F: EntityTrait + Related<R>,
        R: Joinable,
    {
        if F::via().is_some() {
            self.error.get_or_insert(Error::JoinThroughJunction {
                from: F::default().table_name(),
                to: R::default().table_name(),
            });
            return self;
        }
        let relation = F::to();
        let table = relation.to_tbl.clone();
        // The relation's own condition (with its AND/OR semantics intact), ANDed with
        // the joined table's tenant predicate: nothing can OR the predicate away.
        let mut on = Condition::all().add(Condition::from(relation));
        if let Some(predicate) = R::join_predicate(R::default().into_iden(), self.tenant) {
            on = on.add(predicate);
        }
        QueryTrait::query(&mut self.select).join(join, table, on);
        self
    }

    /// A subquery `SELECT e.column FROM e WHERE e.tenant_id = $tenant AND …` for
    /// [`filter_in`](Self::filter_in).
    pub fn subquery(self, column: E::Column) -> Subquery {
        let error = self.error;
        let statement = self.select.select_only().column(column).into_query();
        Subquery {
            tenant: self.tenant,
            statement,
            error,
        }
    }

    /// `WHERE column IN (<scoped subquery>)`.
    pub fn filter_in(self, column: E::Column, subquery: Subquery) -> Self {
        self.with_subquery(subquery, |statement| {
            Expr::col((E::default(), column)).in_subquery(statement)
        })
    }

    /// `WHERE column NOT IN (<scoped subquery>)`.
    pub fn filter_not_in(self, column: E::Column, subquery: Subquery) -> Self {
        self.with_subquery(subquery, |statement| {
            Expr::col((E::default(), column)).not_in_subquery(statement)
        })
    }

    fn with_subquery(
        mut self,
        subquery: Subquery,
        condition: impl FnOnce(SelectStatement) -> Expr,
    ) -> Self {
        if let Some(error) = subquery.error {
            self.error.get_or_insert(error);
        } else if subquery.tenant != self.tenant {
            self.error.get_or_insert(Error::TenantMismatch {
                expected: self.tenant,
                found: subquery.tenant.to_string(),
            });
        } else {
            self.select = self.select.filter(condition(subquery.statement));
        }
        self
    }

    /// Selects the rows of a joined entity `R` alongside (`LEFT JOIN`, scoped like
    /// [`left_join`](Self::left_join)): the scoped `find_also_related`.
    pub fn also<R>(self) -> ScopedTwo<'a, E, R>
    where
        R: Joinable,
        E: Related<R>,
    {
        let joined = self.join_relation::<E, R>(JoinType::LeftJoin);
        let (conn, error) = (joined.conn, joined.error);
        let limit = joined.limit;
        let offset = joined.offset;
        let mut select = joined.select.select_also(R::default());
        for (column, order) in joined.order {
            select = select.order_by(column, order);
        }
        select = select.limit(limit).offset(offset);
        ScopedTwo {
            conn,
            select,
            error,
        }
    }

    /// Each row with all its related `R` rows (`LEFT JOIN`, scoped): the scoped
    /// `find_with_related`. Order by the parent's key for the grouping to hold.
    pub fn with<R>(self) -> ScopedWith<'a, E, R>
    where
        R: Joinable,
        E: Related<R>,
    {
        let joined = self.join_relation::<E, R>(JoinType::LeftJoin);
        let (conn, error) = (joined.conn, joined.error);
        let mut select = joined.select.select_with(R::default());
        for (column, order) in joined.order {
            select = select.order_by(column, order);
        }
        ScopedWith {
            conn,
            select,
            error,
        }
    }

    fn build(self) -> Result<(ConnRef<'a>, Select<E>)> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut select = self.select;
        for (column, order) in self.order {
            select = select.order_by(column, order);
        }
        Ok((self.conn, select.limit(self.limit).offset(self.offset)))
    }

    /// The SQL this query runs, rendered for the handle's backend (for logs and tests).
    pub fn to_sql(&self) -> String {
        let mut select = self.select.clone();
        for (column, order) in &self.order {
            select = select.order_by(*column, order.clone());
        }
        select
            .limit(self.limit)
            .offset(self.offset)
            .build(self.conn.backend())
            .to_string()
    }

    /// The SQL this query runs, consuming the builder exactly as execution does (no
    /// clone): what the overhead benchmark measures.
    pub fn into_sql(self) -> Result<String> {
        let (conn, select) = self.build()?;
        Ok(select.build(conn.backend()).to_string())
    }

    /// All matching rows.
    pub async fn all(self) -> Result<Vec<E::Model>> {
        let (conn, select) = self.build()?;
        Ok(select.all(&conn.executor()).await?)
    }

    /// The first matching row.
    pub async fn one(self) -> Result<Option<E::Model>> {
        let (conn, select) = self.build()?;
        Ok(select.one(&conn.executor()).await?)
    }

    /// `SELECT COUNT(*)` of the matching rows (ordering, limit and offset ignored).
    pub async fn count(mut self) -> Result<u64>
    where
        E::Model: Sync,
    {
        self.order.clear();
        self.limit = None;
        self.offset = None;
        let (conn, select) = self.build()?;
        let executor = conn.executor();
        Ok(select.count(&executor).await?)
    }

    /// The matching rows as a stream, without loading them all.
    pub async fn stream(self) -> Result<RowStream<'a, E::Model>>
    where
        E::Model: Send + 'a,
    {
        let (conn, select) = self.build()?;
        Ok(match conn.0 {
            ConnKind::Pool(pool) => select.stream(pool).await?.map_err(Error::from).boxed(),
            ConnKind::Txn(txn) => select.stream(txn).await?.map_err(Error::from).boxed(),
        })
    }

    /// Applies a keyset: `WHERE (k1, k2) > ($1, $2) ORDER BY k1, k2 LIMIT n+1` (one row
    /// more than the page, to learn whether another follows). [`page`](Self::page) runs it.
    pub fn seek(mut self, keyset: &Keyset<E>) -> Self {
        match keyset.condition() {
            Ok(Some(condition)) => self.select = self.select.filter(condition),
            Ok(None) => {}
            Err(error) => {
                self.error.get_or_insert(error);
                return self;
            }
        }
        self.order = keyset
            .columns
            .iter()
            .map(|c| (*c, keyset.order.clone()))
            .collect();
        self.limit = Some(keyset.limit.saturating_add(1));
        self
    }

    /// One page of a keyset walk (see [`seek`](Self::seek)).
    ///
    /// The row-value comparison is served by an index on `(tenant_id, k1, k2)`. The key
    /// columns must be unique together (end with the primary key) for the walk to visit
    /// each row exactly once. Earlier `order_by` calls are replaced by the keyset order.
    pub async fn page(self, keyset: Keyset<E>) -> Result<Page<E::Model>> {
        let rows = self.seek(&keyset).all().await?;
        Ok(keyset.page_of(rows, |row| row))
    }
}

/// A keyset (seek) pagination request: the key columns, the direction, where the
/// previous page ended and how many rows to return.
#[derive(Debug, Clone)]
pub struct Keyset<E: EntityTrait> {
    columns: Vec<E::Column>,
    order: Order,
    after: Option<Vec<Value>>,
    limit: u64,
}

impl<E: EntityTrait> Keyset<E> {
    /// `(k1, k2) > ($1, $2)` (or `<` descending) for the position to continue after.
    fn condition(&self) -> Result<Option<Expr>> {
        let Some(after) = &self.after else {
            return Ok(None);
        };
        if after.len() != self.columns.len() {
            return Err(Error::InvalidKeyset {
                expected: self.columns.len(),
                found: after.len(),
            });
        }
        let table = E::default();
        let left = Expr::tuple(self.columns.iter().map(|c| Expr::col((table, *c))));
        let right = Expr::tuple(after.iter().cloned().map(Expr::val));
        Ok(Some(match self.order {
            Order::Desc => left.lt(right),
            _ => left.gt(right),
        }))
    }

    /// Cuts the `limit + 1` rows a seek fetched to one page; `key_row` picks the `E` row
    /// of each item, whose key continues the walk.
    fn page_of<T>(&self, mut rows: Vec<T>, key_row: impl Fn(&T) -> &E::Model) -> Page<T> {
        let has_more = rows.len() as u64 > self.limit;
        rows.truncate(usize::try_from(self.limit).unwrap_or(usize::MAX));
        let next = rows
            .last()
            .map(|item| self.columns.iter().map(|c| key_row(item).get(*c)).collect());
        Page {
            rows,
            has_more,
            next,
        }
    }

    /// Ascending by `columns` (e.g. `[UpdatedAt, Id]`), 50 rows a page.
    pub fn asc(columns: impl IntoIterator<Item = E::Column>) -> Self {
        Self {
            columns: columns.into_iter().collect(),
            order: Order::Asc,
            after: None,
            limit: 50,
        }
    }

    /// Descending by `columns`, 50 rows a page.
    pub fn desc(columns: impl IntoIterator<Item = E::Column>) -> Self {
        Self {
            order: Order::Desc,
            ..Self::asc(columns)
        }
    }

    /// Continue after the row whose key is `values` (one value per key column).
    pub fn after(mut self, values: Option<Vec<Value>>) -> Self {
        self.after = values;
        self
    }

    /// Rows per page.
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }
}

/// One page of a keyset walk.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<M> {
    /// The rows, at most the requested limit.
    pub rows: Vec<M>,
    /// Whether at least one more row follows.
    pub has_more: bool,
    /// The key of the last row, to continue from with [`Keyset::after`]; `None` when
    /// the page is empty.
    pub next: Option<Vec<Value>>,
}

/// A scoped `SELECT column FROM e WHERE e.tenant_id = $tenant AND …`, only usable in
/// [`Scoped::filter_in`] of the same tenant.
#[derive(Debug)]
#[must_use]
pub struct Subquery {
    tenant: TenantId,
    statement: SelectStatement,
    error: Option<Error>,
}

/// A scoped read of `E` with its related `R` (`find_also_related`).
#[must_use = "a query does nothing until it is executed"]
pub struct ScopedTwo<'a, E: EntityTrait, R: EntityTrait> {
    conn: ConnRef<'a>,
    select: SelectTwo<E, R>,
    error: Option<Error>,
}

impl<'a, E: EntityTrait, R: EntityTrait> ScopedTwo<'a, E, R> {
    /// Adds a condition (on either entity), ANDed with the tenant predicates.
    pub fn filter(mut self, condition: impl IntoCondition) -> Self {
        self.select = self.select.filter(condition);
        self
    }

    /// Orders by a column of either entity.
    pub fn order_by(mut self, column: impl ColumnTrait, order: Order) -> Self {
        self.select = self.select.order_by(column, order);
        self
    }

    /// `LIMIT n`.
    pub fn limit(mut self, n: u64) -> Self {
        self.select = self.select.limit(n);
        self
    }

    /// The SQL this query runs.
    pub fn to_sql(&self) -> String {
        self.select.clone().build(self.conn.backend()).to_string()
    }

    /// One page of a keyset walk over `E`'s key columns, each row with its related row:
    /// `WHERE … AND (k1, k2) > ($1, $2) ORDER BY k1, k2 LIMIT n+1`. Earlier `order_by`
    /// calls come first in the `ORDER BY`, so give none when paging.
    pub async fn page(mut self, keyset: Keyset<E>) -> Result<Page<(E::Model, Option<R::Model>)>> {
        if let Some(condition) = keyset.condition()? {
            self.select = self.select.filter(condition);
        }
        for column in &keyset.columns {
            self.select = self.select.order_by(*column, keyset.order.clone());
        }
        self.select = self.select.limit(keyset.limit.saturating_add(1));
        let rows = self.all().await?;
        Ok(keyset.page_of(rows, |(row, _)| row))
    }

    /// All rows with their related row, if any.
    pub async fn all(self) -> Result<Vec<(E::Model, Option<R::Model>)>> {
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(self.select.all(&self.conn.executor()).await?)
    }

    /// The first row with its related row, if any.
    pub async fn one(self) -> Result<Option<(E::Model, Option<R::Model>)>> {
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(self.select.one(&self.conn.executor()).await?)
    }
}

/// A scoped read of `E` with all its related `R` rows (`find_with_related`).
#[must_use = "a query does nothing until it is executed"]
pub struct ScopedWith<'a, E: EntityTrait, R: EntityTrait> {
    conn: ConnRef<'a>,
    select: SelectTwoMany<E, R>,
    error: Option<Error>,
}

impl<'a, E: EntityTrait, R: EntityTrait> ScopedWith<'a, E, R> {
    /// Adds a condition (on either entity), ANDed with the tenant predicates.
    pub fn filter(mut self, condition: impl IntoCondition) -> Self {
        self.select = self.select.filter(condition);
        self
    }

    /// The SQL this query runs.
    pub fn to_sql(&self) -> String {
        self.select.clone().build(self.conn.backend()).to_string()
    }

    /// Every row with its related rows.
    pub async fn all(self) -> Result<Vec<(E::Model, Vec<R::Model>)>> {
        if let Some(error) = self.error {
            return Err(error);
        }
        Ok(self.select.all(&self.conn.executor()).await?)
    }
}
