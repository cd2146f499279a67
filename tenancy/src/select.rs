//! Scoped reads: [`Scoped`] and the joined readers built from it.

use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, IntoIden, JoinType, SelectStatement};
use sea_orm::{
    ColumnTrait, EntityTrait, ModelTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Related, Select, SelectTwo, SelectTwoMany,
};

use crate::conn::ConnRef;
use crate::entity::Kind;
use crate::expr::{Cond, Order, Value, condition};
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
    /// `None` only for the escape hatch's reads ([`Unscoped::find`](crate::Unscoped::find)).
    tenant: Option<TenantId>,
    select: Select<E>,
    order: Vec<(E::Column, Order)>,
    limit: Option<u64>,
    offset: Option<u64>,
    /// Global tables joined: confirmed against the database catalog before running.
    globals: Vec<&'static str>,
    /// Every table joined so far (for [`Scoped::filter_on`]).
    joined: Vec<&'static str>,
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

/// `"table"."column" = $tenant`: the predicate every scoped statement leads with.
pub(crate) fn tenant_predicate(
    table: &'static str,
    column: &'static str,
    tenant: TenantId,
) -> Expr {
    Expr::col((table.into_iden(), column.into_iden())).eq(tenant.as_uuid())
}

impl<'a, E: Joinable> Scoped<'a, E> {
    pub(crate) fn new(conn: ConnRef<'a>, tenant: TenantId, tenant_column: &'static str) -> Self {
        // The tenant predicate is the first condition; sea-query ANDs every later
        // `filter` onto it (an `any` condition is nested, never merged).
        let error = crate::registry::ensure::<E>().err();
        let select = E::find().filter(tenant_predicate(
            E::default().table_name(),
            tenant_column,
            tenant,
        ));
        Self {
            conn,
            tenant: Some(tenant),
            select,
            order: Vec::new(),
            limit: None,
            offset: None,
            globals: Vec::new(),
            joined: Vec::new(),
            error,
        }
    }

    pub(crate) fn unscoped(conn: ConnRef<'a>) -> Self {
        let globals = match E::KIND {
            Kind::Global => vec![E::default().table_name()],
            Kind::Tenant | Kind::Root => Vec::new(),
        };
        Self {
            conn,
            tenant: None,
            select: E::find(),
            order: Vec::new(),
            limit: None,
            offset: None,
            globals,
            joined: Vec::new(),
            error: crate::registry::ensure::<E>().err(),
        }
    }
}

impl<'a, E: EntityTrait> Scoped<'a, E> {
    /// Adds a condition, ANDed with the tenant predicate and earlier filters.
    pub fn filter(mut self, cond: Cond<E::Column>) -> Self {
        self.select = self.select.filter(condition(cond));
        self
    }

    /// `FOR SHARE`: the rows read stay as read until the transaction ends — another
    /// transaction's `UPDATE` or `DELETE` of them waits for it, and a read that waited
    /// for such a change re-checks its conditions against the changed row (PostgreSQL).
    /// Use it inside a transaction to check a row a write depends on (a reference). SQLite
    /// has no row locks and needs none: its write transactions run one at a time.
    pub fn for_share(mut self) -> Self {
        self.select = self.select.lock_shared();
        self
    }

    /// Adds a condition on an entity `R` joined earlier ([`join`](Self::join),
    /// [`join_from`](Self::join_from)), ANDed with the tenant predicates. Naming an entity
    /// that was not joined is refused before any SQL runs.
    pub fn filter_on<R: Joinable>(mut self, cond: Cond<R::Column>) -> Self {
        let table = R::default().table_name();
        if self.joined.contains(&table) {
            self.select = self.select.filter(condition(cond));
        } else {
            self.error.get_or_insert(Error::Refused(format!(
                "a filter names `{table}`, which this query does not join"
            )));
        }
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
        if let Err(error) = crate::registry::ensure::<R>() {
            self.error.get_or_insert(error);
            return self;
        }
        let from = F::default().table_name();
        let to = R::default().table_name();
        if F::via().is_some() {
            self.error
                .get_or_insert(Error::JoinThroughJunction { from, to });
            return self;
        }
        let relation = F::to();
        // The relation must join exactly F to R, on columns alone: a relation whose
        // target is another table would put R's tenant predicate on the wrong table, and
        // a custom ON condition could carry anything.
        if relation.from_tbl != F::default().table_ref()
            || relation.to_tbl != R::default().table_ref()
            || relation.on_condition.is_some()
        {
            self.error.get_or_insert(Error::Refused(format!(
                "the relation from `{from}` to `{to}` does not join those two tables on columns alone"
            )));
            return self;
        }
        let table = relation.to_tbl.clone();
        // The relation's own condition (with its AND/OR semantics intact), ANDed with
        // the joined table's tenant predicate: nothing can OR the predicate away.
        let mut on = Condition::all().add(Condition::from(relation));
        match (R::KIND, self.tenant) {
            (Kind::Tenant, Some(tenant)) => on = on.add(tenant_predicate(to, "tenant_id", tenant)),
            (Kind::Root, Some(tenant)) => on = on.add(tenant_predicate(to, "id", tenant)),
            (Kind::Global, _) => self.globals.push(to),
            (_, None) => {}
        }
        QueryTrait::query(&mut self.select).join(join, table, on);
        self.joined.push(to);
        self
    }

    /// A subquery `SELECT e.column FROM e WHERE e.tenant_id = $tenant AND …` for
    /// [`filter_in`](Self::filter_in).
    pub fn subquery(self, column: E::Column) -> Subquery {
        let error = match (self.error, self.tenant) {
            (Some(error), _) => Some(error),
            (None, None) => Some(Error::Refused(
                "an unscoped read cannot be used as a subquery".to_owned(),
            )),
            (None, Some(_)) => None,
        };
        let statement = self.select.select_only().column(column).into_query();
        Subquery {
            tenant: self.tenant,
            statement,
            globals: self.globals,
            error,
        }
    }

    /// `WHERE column IN (<scoped subquery>)`.
    pub fn filter_in(self, column: E::Column, subquery: Subquery) -> Self {
        self.with_subquery(subquery, |statement| {
            Expr::col(column.as_column_ref()).in_subquery(statement)
        })
    }

    /// `WHERE column NOT IN (<scoped subquery>)`.
    pub fn filter_not_in(self, column: E::Column, subquery: Subquery) -> Self {
        self.with_subquery(subquery, |statement| {
            Expr::col(column.as_column_ref()).not_in_subquery(statement)
        })
    }

    fn with_subquery(
        mut self,
        subquery: Subquery,
        make: impl FnOnce(SelectStatement) -> Expr,
    ) -> Self {
        match (subquery.error, self.tenant) {
            (Some(error), _) => {
                self.error.get_or_insert(error);
            }
            (None, Some(tenant)) if subquery.tenant == Some(tenant) => {
                self.globals.extend(subquery.globals);
                self.select = self.select.filter(make(subquery.statement));
            }
            (None, expected) => {
                self.error.get_or_insert(match expected {
                    Some(expected) => Error::TenantMismatch {
                        expected,
                        found: subquery.tenant.map_or_else(String::new, |t| t.to_string()),
                    },
                    None => Error::Refused("an unscoped read takes no subquery".to_owned()),
                });
            }
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
        let (conn, error, globals) = (joined.conn, joined.error, joined.globals);
        let limit = joined.limit;
        let offset = joined.offset;
        let mut select = joined.select.select_also(R::default());
        for (column, order) in joined.order {
            select = select.order_by(column, order.to_sea());
        }
        select = select.limit(limit).offset(offset);
        ScopedTwo {
            conn,
            select,
            globals,
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
        let (conn, error, globals) = (joined.conn, joined.error, joined.globals);
        let mut select = joined.select.select_with(R::default());
        for (column, order) in joined.order {
            select = select.order_by(column, order.to_sea());
        }
        ScopedWith {
            conn,
            select,
            globals,
            error,
        }
    }

    fn build(self) -> Result<(ConnRef<'a>, Vec<&'static str>, Select<E>)> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut select = self.select;
        for (column, order) in self.order {
            select = select.order_by(column, order.to_sea());
        }
        Ok((
            self.conn,
            self.globals,
            select.limit(self.limit).offset(self.offset),
        ))
    }

    /// The SQL this query runs, rendered for the handle's backend (for logs and tests).
    pub fn to_sql(&self) -> String {
        let mut select = self.select.clone();
        for (column, order) in &self.order {
            select = select.order_by(*column, order.to_sea());
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
        let (conn, _, select) = self.build()?;
        Ok(select.build(conn.backend()).to_string())
    }

    /// All matching rows.
    pub async fn all(self) -> Result<Vec<E::Model>> {
        let (conn, globals, select) = self.build()?;
        conn.confirm_globals(&globals).await?;
        Ok(select.all(&conn.exec()).await?)
    }

    /// The first matching row.
    pub async fn one(self) -> Result<Option<E::Model>> {
        let (conn, globals, select) = self.build()?;
        conn.confirm_globals(&globals).await?;
        Ok(select.one(&conn.exec()).await?)
    }

    /// `SELECT COUNT(*)` of the matching rows (ordering, limit and offset ignored).
    pub async fn count(mut self) -> Result<u64>
    where
        E::Model: Sync,
    {
        self.order.clear();
        self.limit = None;
        self.offset = None;
        let (conn, globals, select) = self.build()?;
        conn.confirm_globals(&globals).await?;
        Ok(select.count(&conn.exec()).await?)
    }

    /// The matching rows as a stream, without loading them all.
    pub async fn stream(self) -> Result<RowStream<'a, E::Model>>
    where
        E::Model: Send + 'a,
    {
        let (conn, globals, select) = self.build()?;
        conn.confirm_globals(&globals).await?;
        let statement = select.build(conn.backend());
        let rows = conn.stream(statement).await?;
        Ok(rows
            .map(|row| {
                let row = row?;
                Ok(<E::Model as sea_orm::FromQueryResult>::from_query_result(
                    &row, "",
                )?)
            })
            .boxed())
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
        self.order = keyset.columns.iter().map(|c| (*c, keyset.order)).collect();
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
        let left = Expr::tuple(self.columns.iter().map(|c| Expr::col(c.as_column_ref())));
        let right = Expr::tuple(after.iter().cloned().map(|v| Expr::val(v.into_inner())));
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
        let next = rows.last().map(|item| {
            self.columns
                .iter()
                .map(|c| Value(key_row(item).get(*c)))
                .collect()
        });
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
    tenant: Option<TenantId>,
    statement: SelectStatement,
    globals: Vec<&'static str>,
    error: Option<Error>,
}

/// A scoped read of `E` with its related `R` (`find_also_related`).
#[must_use = "a query does nothing until it is executed"]
pub struct ScopedTwo<'a, E: EntityTrait, R: EntityTrait> {
    conn: ConnRef<'a>,
    select: SelectTwo<E, R>,
    globals: Vec<&'static str>,
    error: Option<Error>,
}

impl<'a, E: EntityTrait, R: EntityTrait> ScopedTwo<'a, E, R> {
    /// Adds a condition on `E`, ANDed with the tenant predicates.
    pub fn filter(mut self, cond: Cond<E::Column>) -> Self {
        self.select = self.select.filter(condition(cond));
        self
    }

    /// Adds a condition on the joined `R`, ANDed with the tenant predicates.
    pub fn filter_joined(mut self, cond: Cond<R::Column>) -> Self {
        self.select = self.select.filter(condition(cond));
        self
    }

    /// Orders by a column of `E`.
    pub fn order_by(mut self, column: E::Column, order: Order) -> Self {
        self.select = self.select.order_by(column, order.to_sea());
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
            self.select = self.select.order_by(*column, keyset.order.to_sea());
        }
        self.select = self.select.limit(keyset.limit.saturating_add(1));
        let rows = self.all().await?;
        Ok(keyset.page_of(rows, |(row, _)| row))
    }

    fn build(self) -> Result<(ConnRef<'a>, Vec<&'static str>, SelectTwo<E, R>)> {
        match self.error {
            Some(error) => Err(error),
            None => Ok((self.conn, self.globals, self.select)),
        }
    }

    /// All rows with their related row, if any.
    pub async fn all(self) -> Result<Vec<(E::Model, Option<R::Model>)>> {
        let (conn, globals, select) = self.build()?;
        conn.confirm_globals(&globals).await?;
        Ok(select.all(&conn.exec()).await?)
    }

    /// The first row with its related row, if any.
    pub async fn one(self) -> Result<Option<(E::Model, Option<R::Model>)>> {
        let (conn, globals, select) = self.build()?;
        conn.confirm_globals(&globals).await?;
        Ok(select.one(&conn.exec()).await?)
    }
}

/// A scoped read of `E` with all its related `R` rows (`find_with_related`).
#[must_use = "a query does nothing until it is executed"]
pub struct ScopedWith<'a, E: EntityTrait, R: EntityTrait> {
    conn: ConnRef<'a>,
    select: SelectTwoMany<E, R>,
    globals: Vec<&'static str>,
    error: Option<Error>,
}

impl<E: EntityTrait, R: EntityTrait> ScopedWith<'_, E, R> {
    /// Adds a condition on `E`, ANDed with the tenant predicates.
    pub fn filter(mut self, cond: Cond<E::Column>) -> Self {
        self.select = self.select.filter(condition(cond));
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
        self.conn.confirm_globals(&self.globals).await?;
        Ok(self.select.all(&self.conn.exec()).await?)
    }
}
