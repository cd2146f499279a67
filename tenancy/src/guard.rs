//! The statement guard: the run-time net under the crate's compile-time guarantee.
//!
//! Every statement the crate executes passes [`Guard::check`] first. The check parses
//! the statement (sqlparser, PostgreSQL or SQLite dialect) and walks the AST against an
//! ALLOW-LIST of exactly what tenancy's builders (sea-orm 2.0 / sea-query 1.0) emit;
//! anything else is refused and never executed. It is not a search for bad fragments.
//!
//! ## Text
//! - Printable ASCII, space, tab and newlines only; no comments (`--`, `/* */`), no `;`.
//! - Exactly one statement: `SELECT`, `INSERT`, `UPDATE` or `DELETE` (no DDL, `PRAGMA`,
//!   `SET`, transaction control…).
//! - Placeholders only in the dialect's form: PostgreSQL `$n` (parameter `n - 1`), SQLite
//!   plain positional `?` (the k-th `?` is parameter `k - 1`).
//! - Tables and columns are double-quoted identifiers (as sea-query writes them).
//!
//! ## Tables
//! - Only catalog tables, by plain name: no schema, no alias, no table function, no
//!   view or system table (they are not in the catalog). The same name at most once per
//!   query level. A derived table `(SELECT …) AS "alias"` (sea-orm's `count()`) is
//!   allowed when its query passes these rules on its own.
//! - `FROM` has one table; joins are `[INNER] JOIN … ON` or `LEFT [OUTER] JOIN … ON` of a
//!   plain table (no RIGHT/FULL/CROSS/NATURAL/USING, no comma joins).
//!
//! ## The tenant predicate (tenant scope only)
//! Each tenant-owned table in `FROM` (or the target of `UPDATE`/`DELETE`) needs
//! `"<table>"."tenant_id" = $k` as a top-level conjunct of the `WHERE` (AND and
//! parentheses are looked through, OR and NOT never); each joined one needs it in its
//! own `ON` clause; the tenant root needs `"tenants"."id" = $k` the same way. Either
//! operand order. Parameter `k` must hold `Value::Uuid(Some(tenant))` on every call.
//! Subqueries need their own predicate in their own `WHERE`. Global tables need none.
//! A tenant handle may only read the tenant root and global tables; it writes only
//! tenant-owned tables, never sets `tenant_id` in an `UPDATE` or an upsert, and inserts
//! with `tenant_id` in the column list bound to a placeholder in every row. An
//! `ON CONFLICT` target must include `tenant_id`. The unscoped handle gets the same
//! structural allow-list, without the tenant rules.
//!
//! ## Statements
//! - `SELECT`: no `WITH`, set operations, `DISTINCT`, `GROUP BY`/`HAVING`, windows or
//!   locks other than a plain `FOR SHARE`. Select list: `*`, `"t".*`, column references and `COUNT(*)`/`COUNT(col)`,
//!   each optionally `AS alias`. `ORDER BY` column references `ASC`/`DESC` (`NULLS`
//!   allowed); `LIMIT $k`, `OFFSET $k`.
//! - `INSERT INTO "t" (cols) VALUES (…), …`: every value a placeholder, `NULL`, `TRUE`,
//!   `FALSE` or `DEFAULT`; `ON CONFLICT (cols) DO NOTHING | DO UPDATE SET c = "excluded"."c"`;
//!   no `INSERT … SELECT`, no `INSERT OR …`.
//! - `UPDATE "t" SET c = <value>, … WHERE …`: no `FROM`, no joins.
//! - `DELETE FROM "t" WHERE …`: no `USING`.
//! - `RETURNING`: column references of the target or `*`.
//!
//! ## Expressions
//! Column references in scope at their own query level (no correlated references) and
//! present in the catalog; placeholders; `NULL`, `TRUE`, `FALSE`; `AND`/`OR`/`NOT`;
//! `= <> != < <= > >=` (also between row values `(a, b) > ($1, $2)`); `+`/`-` between
//! column references and placeholders; `IS [NOT] NULL`; `[NOT] BETWEEN`; `[NOT] [I]LIKE $k`
//! with an optional one-character `ESCAPE` literal (the only literal allowed);
//! `[NOT] IN ($1, …)`; `[NOT] IN (SELECT <one column> …)` checked recursively;
//! `LOWER`, `UPPER`, `COALESCE`. Everything else is refused: inline numbers and strings
//! (sea-query binds every value), other functions and operators, casts, `EXISTS`,
//! scalar and `ANY`/`ALL` subqueries, `CASE`…
//!
//! ## Cost
//! The structural verdict per (dialect, tenant scope or not, SQL text) is cached; per
//! call only the tenant parameters are compared. Refusals are not cached (the catalog
//! grows, and refusals are rare).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use sea_orm::sea_query::Value;
use sqlparser::ast::{
    Assignment, AssignmentTarget, BinaryOperator, ConflictTarget, Delete, DoUpdate, Expr,
    FromTable, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments,
    GroupByExpr, Ident, InTarget, Insert, Join, JoinConstraint, JoinOperator, LimitClause,
    LockClause, LockType, ObjectName, ObjectNamePart, Offset, OffsetRows, OnConflict,
    OnConflictAction, OnInsert, OrderBy, OrderByExpr, OrderByKind, OrderByOptions, OrderBySort,
    Query, Select, SelectFlavor, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, Statement,
    TableAlias, TableFactor, TableObject, TableWithJoins, UnaryOperator, Update, Values,
    WildcardAdditionalOptions,
};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};

/// The SQL dialect of a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Dialect {
    /// SQLite: positional `?` placeholders.
    Sqlite,
    /// PostgreSQL: numbered `$1..$n` placeholders.
    Postgres,
}

/// How a table relates to tenants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TableKind {
    /// Tenant-owned: column `tenant_id` must equal the tenant.
    Tenant,
    /// The tenants table itself: column `id` must equal the tenant; a tenant handle may
    /// only `SELECT` it.
    Root,
    /// Shared reference data: no tenant predicate; a tenant handle may only read it.
    Global,
}

/// The registered tables.
pub(crate) trait Catalog: Send + Sync {
    /// Kind and column names (plain lower-case identifiers) of a registered table;
    /// `None` = unknown table (refused).
    fn table(&self, name: &str) -> Option<(TableKind, Arc<[String]>)>;
}

/// Who runs the statement.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scope {
    /// A tenant handle: the tenant rules apply.
    Tenant(uuid::Uuid),
    /// The escape hatch: only the structural allow-list applies.
    Unscoped,
}

/// What an accepted statement touches.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    /// Every table the statement references, deduplicated, sorted.
    pub(crate) tables: Arc<[String]>,
}

/// Why a statement was refused (human-readable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal(pub(crate) String);

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// The cached structural verdict of an accepted statement.
#[derive(Debug)]
struct Analysis {
    /// 0-based parameter indexes that must hold the tenant id.
    tenant_params: Vec<usize>,
    /// Every table referenced, deduplicated, sorted.
    tables: Arc<[String]>,
}

/// Statements longer than this are analysed every time instead of being cached, so the
/// cache's memory stays bounded by `capacity * MAX_CACHED_SQL`.
const MAX_CACHED_SQL: usize = 64 * 1024;

/// Expression nesting deeper than this is refused (chains of `AND`/`OR` are flat).
const MAX_DEPTH: usize = 128;

/// PostgreSQL's limit on bound parameters.
const MAX_PARAMS: usize = 65_535;

type CacheKey = (Dialect, bool, String);

/// A borrowed cache key: hashes exactly like [`CacheKey`].
#[derive(Hash)]
struct KeyRef<'a>(Dialect, bool, &'a str);

impl quick_cache::Equivalent<CacheKey> for KeyRef<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        self.0 == key.0 && self.1 == key.1 && self.2 == key.2
    }
}

/// Checks every statement against the allow-list; caches structural verdicts.
pub(crate) struct Guard {
    cache: quick_cache::sync::Cache<CacheKey, Arc<Analysis>>,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("cached", &self.cache.len())
            .field("capacity", &self.cache.capacity())
            .finish()
    }
}

impl Guard {
    /// A guard caching the verdicts of up to `capacity` distinct statements.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            cache: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }

    /// Accepts the statement (with the tables it references) or says why not.
    pub(crate) fn check(
        &self,
        dialect: Dialect,
        sql: &str,
        values: &[Value],
        scope: Scope,
        catalog: &dyn Catalog,
    ) -> Result<Checked, Refusal> {
        let tenant = match scope {
            Scope::Tenant(tenant) => Some(tenant),
            Scope::Unscoped => None,
        };
        let scoped = tenant.is_some();
        let analysis = match self.cache.get(&KeyRef(dialect, scoped, sql)) {
            Some(analysis) => analysis,
            None => {
                let analysis = Arc::new(analyze(dialect, scoped, sql, catalog)?);
                if sql.len() <= MAX_CACHED_SQL {
                    self.cache
                        .insert((dialect, scoped, sql.to_owned()), Arc::clone(&analysis));
                }
                analysis
            }
        };
        if let Some(tenant) = tenant {
            for &index in &analysis.tenant_params {
                match values.get(index) {
                    Some(Value::Uuid(Some(found))) if *found == tenant => {}
                    Some(Value::Uuid(Some(_))) => {
                        return Err(refusal(format!(
                            "tenant parameter #{} holds another tenant's id",
                            index + 1
                        )));
                    }
                    Some(_) => {
                        return Err(refusal(format!(
                            "tenant parameter #{} is not a non-null UUID value",
                            index + 1
                        )));
                    }
                    None => {
                        return Err(refusal(format!(
                            "tenant parameter #{} is missing ({} values bound)",
                            index + 1,
                            values.len()
                        )));
                    }
                }
            }
        }
        Ok(Checked {
            tables: Arc::clone(&analysis.tables),
        })
    }
}

fn refusal(reason: impl Into<String>) -> Refusal {
    Refusal(reason.into())
}

fn refuse<T>(reason: impl Into<String>) -> Result<T, Refusal> {
    Err(refusal(reason))
}

/// A short rendering of an AST node for a refusal.
fn snippet(node: &impl fmt::Display) -> String {
    let text = node.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("`{}…`", &text[..cut]),
        None => format!("`{text}`"),
    }
}

/// The 0-based index of a `$n` placeholder.
fn placeholder_index(text: &str) -> Option<usize> {
    let digits = text.strip_prefix('$')?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: usize = digits.parse().ok()?;
    (n <= MAX_PARAMS).then(|| n - 1)
}

/// Parses `sql` into exactly one statement; SQLite's `?` become `$1..$n` in order.
fn parse(dialect: Dialect, sql: &str) -> Result<Statement, Refusal> {
    if let Some(c) = sql
        .chars()
        .find(|c| !(c.is_ascii_graphic() || matches!(c, ' ' | '\t' | '\n' | '\r')))
    {
        return refuse(format!("character {c:?} in the statement text"));
    }
    let postgres = PostgreSqlDialect {};
    let sqlite = SQLiteDialect {};
    let parser_dialect: &dyn sqlparser::dialect::Dialect = match dialect {
        Dialect::Postgres => &postgres,
        Dialect::Sqlite => &sqlite,
    };
    let mut tokens = Tokenizer::new(parser_dialect, sql)
        .tokenize()
        .map_err(|e| refusal(format!("statement does not tokenize: {e}")))?;
    let mut positional = 0usize;
    for token in &mut tokens {
        match token {
            Token::Whitespace(Whitespace::Space | Whitespace::Newline | Whitespace::Tab) => {}
            Token::Whitespace(_) => return refuse("comment in the statement text"),
            Token::SemiColon => return refuse("`;` in the statement text"),
            Token::Placeholder(text) => match dialect {
                Dialect::Sqlite if text == "?" => {
                    positional += 1;
                    *text = format!("${positional}");
                }
                Dialect::Postgres if placeholder_index(text).is_some() => {}
                _ => return refuse(format!("placeholder `{text}` is not {dialect:?}'s form")),
            },
            _ => {}
        }
    }
    if positional > MAX_PARAMS {
        return refuse("too many placeholders");
    }
    let mut statements = Parser::new(parser_dialect)
        .with_tokens(tokens)
        .parse_statements()
        .map_err(|e| refusal(format!("statement does not parse: {e}")))?;
    match statements.len() {
        1 => Ok(statements.remove(0)),
        n => refuse(format!("{n} statements where exactly one is allowed")),
    }
}

/// The structural analysis: everything but the per-call values.
fn analyze(
    dialect: Dialect,
    tenant: bool,
    sql: &str,
    catalog: &dyn Catalog,
) -> Result<Analysis, Refusal> {
    let statement = parse(dialect, sql)?;
    let mut analyzer = Analyzer {
        dialect,
        tenant,
        catalog,
        tenant_params: BTreeSet::new(),
        tables: BTreeSet::new(),
    };
    match &statement {
        Statement::Query(query) => analyzer.query(query, QueryKind::Top)?,
        Statement::Insert(insert) => analyzer.insert(insert)?,
        Statement::Update(update) => analyzer.update(update)?,
        Statement::Delete(delete) => analyzer.delete(delete)?,
        other => return refuse(format!("statement not allowed: {}", snippet(other))),
    }
    Ok(Analysis {
        tenant_params: analyzer.tenant_params.into_iter().collect(),
        tables: analyzer.tables.into_iter().collect(),
    })
}

/// One relation visible at a query level.
#[derive(Clone)]
struct Rel {
    /// The table name (or a derived table's alias).
    name: String,
    /// `None` for a derived table.
    kind: Option<TableKind>,
    /// Catalog columns; `None` for a derived table (its columns cannot be referenced).
    columns: Option<Arc<[String]>>,
}

impl Rel {
    fn has_column(&self, column: &str) -> bool {
        self.columns
            .as_ref()
            .is_some_and(|columns| columns.iter().any(|c| c == column))
    }

    /// The column that must equal the tenant, for a tenant-bound table.
    fn tenant_column(&self) -> Option<&'static str> {
        match self.kind {
            Some(TableKind::Tenant) => Some("tenant_id"),
            Some(TableKind::Root) => Some("id"),
            Some(TableKind::Global) | None => None,
        }
    }
}

/// The relations of one query level (no outer levels: correlated references are refused).
type Level = [Rel];

#[derive(Clone, Copy, PartialEq, Eq)]
enum QueryKind {
    /// The statement itself.
    Top,
    /// `(SELECT …) AS alias` in `FROM`.
    Derived,
    /// `x [NOT] IN (SELECT col …)`: a single column reference.
    InSubquery,
}

/// Where a projection list appears.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProjectionKind {
    Select,
    Returning,
}

struct Analyzer<'a> {
    dialect: Dialect,
    tenant: bool,
    catalog: &'a dyn Catalog,
    tenant_params: BTreeSet<usize>,
    tables: BTreeSet<String>,
}

/// A double-quoted identifier's text, or a refusal naming `what`.
fn quoted<'i>(ident: &'i Ident, what: &str) -> Result<&'i str, Refusal> {
    if ident.quote_style == Some('"') {
        Ok(&ident.value)
    } else {
        refuse(format!(
            "{what} {} is not a double-quoted identifier",
            snippet(ident)
        ))
    }
}

/// The single double-quoted part of an object name (no schema qualification).
fn plain_name<'n>(name: &'n ObjectName, what: &str) -> Result<&'n str, Refusal> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => quoted(ident, what),
        _ => refuse(format!("{what} {} is not a plain name", snippet(name))),
    }
}

/// Splits `expr` into the operands of a chain of `op` (and, when `through_nested`, of
/// parentheses), without recursion.
fn chain<'e>(expr: &'e Expr, op: &BinaryOperator, through_nested: bool) -> Vec<&'e Expr> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(expr) = stack.pop() {
        match expr {
            Expr::BinaryOp {
                left,
                op: found,
                right,
            } if found == op => {
                stack.push(right);
                stack.push(left);
            }
            Expr::Nested(inner) if through_nested => stack.push(inner),
            other => out.push(other),
        }
    }
    out
}

fn no_wildcard_options(options: &WildcardAdditionalOptions) -> Result<(), Refusal> {
    let WildcardAdditionalOptions {
        wildcard_token: _,
        opt_ilike,
        opt_exclude,
        opt_except,
        opt_replace,
        opt_rename,
        opt_alias,
    } = options;
    if opt_ilike.is_some()
        || opt_exclude.is_some()
        || opt_except.is_some()
        || opt_replace.is_some()
        || opt_rename.is_some()
        || opt_alias.is_some()
    {
        return refuse(format!("wildcard options {}", snippet(options)));
    }
    Ok(())
}

impl Analyzer<'_> {
    /// Looks a table up, records it, and checks what this scope may do with it.
    fn table(&mut self, name: &ObjectName, role: &str, write: bool) -> Result<Rel, Refusal> {
        let table = plain_name(name, "table")?;
        let Some((kind, columns)) = self.catalog.table(table) else {
            return refuse(format!("unknown table \"{table}\" in {role}"));
        };
        if self.tenant && write && kind != TableKind::Tenant {
            return refuse(format!(
                "a tenant handle may not write the {} table \"{table}\"",
                match kind {
                    TableKind::Root => "tenant root",
                    TableKind::Global | TableKind::Tenant => "global",
                }
            ));
        }
        self.tables.insert(table.to_owned());
        Ok(Rel {
            name: table.to_owned(),
            kind: Some(kind),
            columns: Some(columns),
        })
    }

    /// A plain table reference `"t"` in `FROM`/`JOIN`/`UPDATE` (no alias, no extras).
    fn plain_table(
        &mut self,
        factor: &TableFactor,
        role: &str,
        write: bool,
    ) -> Result<Rel, Refusal> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_directives,
                inheritance,
            } => {
                if alias.is_some() {
                    return refuse(format!("table alias in {role}: {}", snippet(factor)));
                }
                if args.is_some()
                    || !with_hints.is_empty()
                    || version.is_some()
                    || *with_ordinality
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || sample.is_some()
                    || !index_directives.is_empty()
                    || inheritance.is_some()
                {
                    return refuse(format!("table modifiers in {role}: {}", snippet(factor)));
                }
                self.table(name, role, write)
            }
            other => refuse(format!("{role} is not a plain table: {}", snippet(other))),
        }
    }

    /// A relation in `FROM`: a plain table, or a derived table with an alias.
    fn base_relation(&mut self, factor: &TableFactor) -> Result<Rel, Refusal> {
        match factor {
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                sample,
            } => {
                if *lateral || sample.is_some() {
                    return refuse(format!("derived table modifiers: {}", snippet(factor)));
                }
                let Some(TableAlias {
                    explicit: _,
                    name,
                    columns,
                    at,
                }) = alias
                else {
                    return refuse("derived table without an alias");
                };
                if !columns.is_empty() || at.is_some() {
                    return refuse(format!("derived table alias columns: {}", snippet(factor)));
                }
                self.query(subquery, QueryKind::Derived)?;
                let name = quoted(name, "derived table alias")?;
                if self.catalog.table(name).is_some() {
                    return refuse(format!("derived table alias \"{name}\" names a table"));
                }
                Ok(Rel {
                    name: name.to_owned(),
                    kind: None,
                    columns: None,
                })
            }
            other => self.plain_table(other, "FROM", false),
        }
    }

    /// Records the tenant predicate of `rel` among the top-level conjuncts of `condition`.
    fn require_predicate(
        &mut self,
        rel: &Rel,
        condition: Option<&Expr>,
        role: &str,
        clause: &str,
    ) -> Result<(), Refusal> {
        let Some(column) = rel.tenant_column() else {
            return Ok(());
        };
        if !self.tenant {
            return Ok(());
        }
        let mut found = false;
        if let Some(condition) = condition {
            for conjunct in chain(condition, &BinaryOperator::And, true) {
                if let Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                } = conjunct
                {
                    let index = match (&**left, &**right) {
                        (Expr::CompoundIdentifier(parts), Expr::Value(value))
                        | (Expr::Value(value), Expr::CompoundIdentifier(parts)) => {
                            match (parts.as_slice(), &value.value) {
                                ([table, col], sqlparser::ast::Value::Placeholder(placeholder))
                                    if table.quote_style == Some('"')
                                        && col.quote_style == Some('"')
                                        && table.value == rel.name
                                        && col.value == column =>
                                {
                                    placeholder_index(placeholder)
                                }
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    if let Some(index) = index {
                        self.tenant_params.insert(index);
                        found = true;
                    }
                }
            }
        }
        if found {
            Ok(())
        } else {
            refuse(format!(
                "table \"{name}\" in {role} has no top-level \"{name}\".\"{column}\" = <tenant> in {clause}",
                name = rel.name
            ))
        }
    }

    fn query(&mut self, query: &Query, kind: QueryKind) -> Result<(), Refusal> {
        let Query {
            with,
            body,
            order_by,
            limit_clause,
            fetch,
            locks,
            for_clause,
            settings,
            format_clause,
            pipe_operators,
        } = query;
        if with.is_some() {
            return refuse("WITH (common table expression)");
        }
        // `FOR SHARE` alone (no `OF`, `NOWAIT` or `SKIP LOCKED`): it keeps the rows read
        // as they are until the transaction ends and changes nothing about which rows.
        let share_only = locks.iter().all(|lock| {
            matches!(
                lock,
                LockClause {
                    lock_type: LockType::Share,
                    of: None,
                    nonblock: None,
                }
            )
        });
        if fetch.is_some()
            || !share_only
            || for_clause.is_some()
            || settings.is_some()
            || format_clause.is_some()
            || !pipe_operators.is_empty()
        {
            return refuse(format!("query clause not allowed in {}", snippet(query)));
        }
        let select = match &**body {
            SetExpr::Select(select) => select,
            SetExpr::SetOperation { op, .. } => return refuse(format!("set operation {op}")),
            other => return refuse(format!("query body not allowed: {}", snippet(other))),
        };
        let level = self.select(select, kind)?;
        if let Some(order_by) = order_by {
            self.order_by(order_by, &level)?;
        }
        if let Some(limit_clause) = limit_clause {
            self.limit(limit_clause)?;
        }
        Ok(())
    }

    fn select(&mut self, select: &Select, kind: QueryKind) -> Result<Vec<Rel>, Refusal> {
        let Select {
            select_token: _,
            optimizer_hints,
            distinct,
            select_modifiers,
            top,
            top_before_distinct: _,
            projection,
            exclude,
            into,
            from,
            lateral_views,
            prewhere,
            selection,
            connect_by,
            group_by,
            cluster_by,
            distribute_by,
            sort_by,
            having,
            named_window,
            qualify,
            window_before_qualify: _,
            value_table_mode,
            flavor,
        } = select;
        if distinct.is_some() {
            return refuse("DISTINCT");
        }
        match group_by {
            GroupByExpr::Expressions(exprs, modifiers)
                if exprs.is_empty() && modifiers.is_empty() => {}
            _ => return refuse("GROUP BY"),
        }
        if having.is_some() {
            return refuse("HAVING");
        }
        if !named_window.is_empty() {
            return refuse("WINDOW");
        }
        if !optimizer_hints.is_empty()
            || select_modifiers.is_some()
            || top.is_some()
            || exclude.is_some()
            || into.is_some()
            || !lateral_views.is_empty()
            || prewhere.is_some()
            || !connect_by.is_empty()
            || !cluster_by.is_empty()
            || !distribute_by.is_empty()
            || !sort_by.is_empty()
            || qualify.is_some()
            || value_table_mode.is_some()
            || *flavor != SelectFlavor::Standard
        {
            return refuse(format!("SELECT clause not allowed in {}", snippet(select)));
        }
        let [TableWithJoins { relation, joins }] = from.as_slice() else {
            return refuse(if from.is_empty() {
                "SELECT without FROM".to_owned()
            } else {
                "more than one table in FROM (comma join)".to_owned()
            });
        };
        let mut level = vec![self.base_relation(relation)?];
        let mut ons = Vec::with_capacity(joins.len());
        for join in joins {
            let Join {
                relation,
                global,
                join_operator,
            } = join;
            let (role, constraint) = match join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => ("JOIN", c),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => ("LEFT JOIN", c),
                _ => return refuse(format!("join type not allowed: {}", snippet(join))),
            };
            if *global {
                return refuse("GLOBAL JOIN");
            }
            let JoinConstraint::On(on) = constraint else {
                return refuse(format!("{role} without ON (NATURAL, USING or none)"));
            };
            let rel = self.plain_table(relation, role, false)?;
            if level.iter().any(|r| r.name == rel.name) {
                return refuse(format!("table \"{}\" appears twice at one level", rel.name));
            }
            level.push(rel);
            ons.push((level.len() - 1, role, on));
        }
        for (index, role, on) in ons {
            self.condition(on, &level, 0)?;
            self.require_predicate(&level[index], Some(on), role, "its ON clause")?;
        }
        if let Some(selection) = selection {
            self.condition(selection, &level, 0)?;
        }
        self.require_predicate(&level[0], selection.as_ref(), "FROM", "WHERE")?;
        if kind == QueryKind::InSubquery {
            match projection.as_slice() {
                [SelectItem::UnnamedExpr(expr)] if self.column_ref(expr, &level)? => {}
                _ => return refuse("an IN subquery must select exactly one column reference"),
            }
        } else {
            self.projection(projection, &level, ProjectionKind::Select)?;
        }
        Ok(level)
    }

    fn projection(
        &mut self,
        items: &[SelectItem],
        level: &Level,
        kind: ProjectionKind,
    ) -> Result<(), Refusal> {
        if items.is_empty() {
            return refuse("empty select list");
        }
        for item in items {
            match item {
                SelectItem::Wildcard(options) => no_wildcard_options(options)?,
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    options,
                ) => {
                    no_wildcard_options(options)?;
                    let table = plain_name(name, "table")?;
                    if !level.iter().any(|r| r.name == table && r.columns.is_some()) {
                        return refuse(format!("\"{table}\".* names no table in scope"));
                    }
                }
                SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, alias: _ } => {
                    let ok = self.column_ref(expr, level)?
                        || (kind == ProjectionKind::Select && self.count(expr, level)?);
                    if !ok {
                        return refuse(format!("select list item not allowed: {}", snippet(expr)));
                    }
                }
                other => {
                    return refuse(format!("select list item not allowed: {}", snippet(other)));
                }
            }
        }
        Ok(())
    }

    /// `COUNT(*)` or `COUNT(col)`: `Ok(false)` when `expr` is no COUNT at all.
    fn count(&self, expr: &Expr, level: &Level) -> Result<bool, Refusal> {
        let Expr::Function(function) = expr else {
            return Ok(false);
        };
        let (name, args) = plain_function(function)?;
        if !name.eq_ignore_ascii_case("COUNT") {
            return Ok(false);
        }
        match args {
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => Ok(true),
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))]
                if self.column_ref(arg, level)? =>
            {
                Ok(true)
            }
            _ => refuse(format!("COUNT arguments not allowed: {}", snippet(expr))),
        }
    }

    /// Checks a column reference: `Ok(false)` when `expr` is not one, a refusal when it
    /// is one that does not resolve at this level.
    fn column_ref(&self, expr: &Expr, level: &Level) -> Result<bool, Refusal> {
        match expr {
            Expr::Identifier(ident) => {
                let column = quoted(ident, "column")?;
                if level.iter().any(|r| r.has_column(column)) {
                    Ok(true)
                } else {
                    refuse(format!(
                        "unknown column \"{column}\" (not in a table in scope)"
                    ))
                }
            }
            Expr::CompoundIdentifier(parts) => {
                let [table, column] = parts.as_slice() else {
                    return refuse(format!(
                        "column reference {} has too many parts",
                        snippet(expr)
                    ));
                };
                let table = quoted(table, "table")?;
                let column = quoted(column, "column")?;
                match level.iter().find(|r| r.name == table) {
                    None => refuse(format!(
                        "column \"{table}\".\"{column}\" refers to a table not in scope at its level"
                    )),
                    Some(rel) if rel.has_column(column) => Ok(true),
                    Some(_) => refuse(format!("unknown column \"{table}\".\"{column}\"")),
                }
            }
            _ => Ok(false),
        }
    }

    fn placeholder(&self, text: &str) -> Result<usize, Refusal> {
        placeholder_index(text).ok_or_else(|| refusal(format!("placeholder `{text}`")))
    }

    /// `Ok(true)` for a placeholder, NULL, TRUE or FALSE; refuses other literals;
    /// `Ok(false)` for non-literals.
    fn constant(&self, expr: &Expr) -> Result<bool, Refusal> {
        let Expr::Value(value) = expr else {
            return Ok(false);
        };
        match &value.value {
            sqlparser::ast::Value::Placeholder(text) => self.placeholder(text).map(|_| true),
            sqlparser::ast::Value::Null | sqlparser::ast::Value::Boolean(_) => Ok(true),
            _ => refuse(format!(
                "inline literal {} (values must be bound)",
                snippet(expr)
            )),
        }
    }

    /// A value: column reference, constant, `+`/`-`, LOWER/UPPER/COALESCE, row value,
    /// parentheses.
    fn operand(&mut self, expr: &Expr, level: &Level, depth: usize) -> Result<(), Refusal> {
        if depth > MAX_DEPTH {
            return refuse("expression nested too deeply");
        }
        if self.column_ref(expr, level)? || self.constant(expr)? {
            return Ok(());
        }
        match expr {
            Expr::Nested(inner) => self.operand(inner, level, depth + 1),
            Expr::Tuple(items) => {
                for item in items {
                    self.operand(item, level, depth + 1)?;
                }
                Ok(())
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Plus | BinaryOperator::Minus,
                right,
            } => {
                self.operand(left, level, depth + 1)?;
                self.operand(right, level, depth + 1)
            }
            Expr::Function(function) => {
                let (name, args) = plain_function(function)?;
                let upper = name.to_ascii_uppercase();
                let arity_ok = match upper.as_str() {
                    "LOWER" | "UPPER" => args.len() == 1,
                    "COALESCE" => !args.is_empty(),
                    _ => return refuse(format!("function {name}() not allowed")),
                };
                if !arity_ok {
                    return refuse(format!("{upper}() with {} arguments", args.len()));
                }
                for arg in args {
                    match arg {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(arg)) => {
                            self.operand(arg, level, depth + 1)?;
                        }
                        other => {
                            return refuse(format!(
                                "function argument not allowed: {}",
                                snippet(other)
                            ));
                        }
                    }
                }
                Ok(())
            }
            other => refuse(describe(other)),
        }
    }

    /// A condition: AND/OR/NOT of comparisons, IS [NOT] NULL, BETWEEN, LIKE, IN, or a
    /// plain value (a boolean column, TRUE, FALSE).
    fn condition(&mut self, expr: &Expr, level: &Level, depth: usize) -> Result<(), Refusal> {
        if depth > MAX_DEPTH {
            return refuse("expression nested too deeply");
        }
        match expr {
            Expr::BinaryOp {
                op: op @ (BinaryOperator::And | BinaryOperator::Or),
                ..
            } => {
                for operand in chain(expr, op, false) {
                    self.condition(operand, level, depth + 1)?;
                }
                Ok(())
            }
            Expr::BinaryOp {
                left,
                op:
                    BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq,
                right,
            } => {
                self.operand(left, level, depth + 1)?;
                self.operand(right, level, depth + 1)
            }
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => self.condition(expr, level, depth + 1),
            Expr::Nested(inner) => self.condition(inner, level, depth + 1),
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => self.operand(inner, level, depth + 1),
            Expr::Between {
                expr,
                negated: _,
                low,
                high,
            } => {
                self.operand(expr, level, depth + 1)?;
                self.operand(low, level, depth + 1)?;
                self.operand(high, level, depth + 1)
            }
            Expr::Like {
                negated: _,
                any,
                expr,
                pattern,
                escape_char,
            }
            | Expr::ILike {
                negated: _,
                any,
                expr,
                pattern,
                escape_char,
            } => {
                if *any {
                    return refuse("LIKE ANY");
                }
                self.operand(expr, level, depth + 1)?;
                self.bound(pattern, "LIKE pattern")?;
                match escape_char {
                    None => Ok(()),
                    Some(escape) => self.escape_char(escape),
                }
            }
            Expr::In {
                expr,
                target,
                negated: _,
                global,
            } => {
                if *global {
                    return refuse("GLOBAL IN");
                }
                self.operand(expr, level, depth + 1)?;
                match target {
                    InTarget::List(items) => {
                        for item in items {
                            if !matches!(item, Expr::Value(v) if matches!(v.value, sqlparser::ast::Value::Placeholder(_)))
                            {
                                return refuse(format!(
                                    "IN list item {} is not a placeholder",
                                    snippet(item)
                                ));
                            }
                            self.constant(item)?;
                        }
                        Ok(())
                    }
                    InTarget::Subquery(query) => self.query(query, QueryKind::InSubquery),
                    other => refuse(format!("IN target not allowed: {}", snippet(other))),
                }
            }
            other => self.operand(other, level, depth + 1),
        }
    }

    /// The literal of `ESCAPE '…'`: one character, written as sea-query writes it.
    fn escape_char(&self, expr: &Expr) -> Result<(), Refusal> {
        use sqlparser::ast::Value as V;
        let ok = match (expr, self.dialect) {
            (Expr::Value(value), dialect) => match (&value.value, dialect) {
                // Without standard_conforming_strings a backslash in '…' would escape the
                // quote on PostgreSQL: only E'\\' is unambiguous there.
                (V::SingleQuotedString(s), Dialect::Postgres) => {
                    s.chars().count() == 1 && s != "\\"
                }
                (V::SingleQuotedString(s), Dialect::Sqlite) => s.chars().count() == 1,
                (V::EscapedStringLiteral(s), Dialect::Postgres) => s.chars().count() == 1,
                _ => false,
            },
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            refuse(format!(
                "ESCAPE {} is not a one-character string",
                snippet(expr)
            ))
        }
    }

    fn order_by(&mut self, order_by: &OrderBy, level: &Level) -> Result<(), Refusal> {
        let OrderBy { kind, interpolate } = order_by;
        if interpolate.is_some() {
            return refuse("ORDER BY … INTERPOLATE");
        }
        let OrderByKind::Expressions(exprs) = kind else {
            return refuse("ORDER BY ALL");
        };
        for OrderByExpr {
            expr,
            options:
                OrderByOptions {
                    sort,
                    nulls_first: _,
                },
            with_fill,
        } in exprs
        {
            if with_fill.is_some() || matches!(sort, Some(OrderBySort::Using(_))) {
                return refuse(format!("ORDER BY modifier in {}", snippet(order_by)));
            }
            if !self.column_ref(expr, level)? {
                return refuse(format!(
                    "ORDER BY {} is not a column reference",
                    snippet(expr)
                ));
            }
        }
        Ok(())
    }

    fn bound(&self, expr: &Expr, what: &str) -> Result<(), Refusal> {
        match expr {
            Expr::Value(value) => match &value.value {
                sqlparser::ast::Value::Placeholder(text) => self.placeholder(text).map(drop),
                _ => refuse(format!("{what} {} is not a placeholder", snippet(expr))),
            },
            _ => refuse(format!("{what} {} is not a placeholder", snippet(expr))),
        }
    }

    fn limit(&mut self, clause: &LimitClause) -> Result<(), Refusal> {
        match clause {
            LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            } => {
                if !limit_by.is_empty() {
                    return refuse("LIMIT BY");
                }
                if let Some(limit) = limit {
                    self.bound(limit, "LIMIT")?;
                }
                if let Some(Offset { value, rows }) = offset {
                    if *rows != OffsetRows::None {
                        return refuse("OFFSET … ROWS");
                    }
                    self.bound(value, "OFFSET")?;
                }
                Ok(())
            }
            LimitClause::OffsetCommaLimit { .. } => refuse("LIMIT offset, count"),
        }
    }

    fn returning(
        &mut self,
        returning: Option<&Vec<SelectItem>>,
        level: &Level,
    ) -> Result<(), Refusal> {
        match returning {
            Some(items) => self.projection(items, level, ProjectionKind::Returning),
            None => Ok(()),
        }
    }

    /// `SET col = value, …` of `target` (`extra` is visible to the values: `excluded`).
    fn assignments(
        &mut self,
        assignments: &[Assignment],
        level: &Level,
        target: &Rel,
        what: &str,
    ) -> Result<(), Refusal> {
        if assignments.is_empty() {
            return refuse(format!("{what} without assignments"));
        }
        for Assignment {
            target: assigned,
            value,
        } in assignments
        {
            let AssignmentTarget::ColumnName(column) = assigned else {
                return refuse(format!("{what} of a tuple {}", snippet(assigned)));
            };
            let column = plain_name(column, "column")?;
            if !target.has_column(column) {
                return refuse(format!(
                    "unknown column \"{}\".\"{column}\" in {what}",
                    target.name
                ));
            }
            if self.tenant && target.kind == Some(TableKind::Tenant) && column == "tenant_id" {
                return refuse(format!(
                    "{what} assigns \"tenant_id\" of \"{}\"",
                    target.name
                ));
            }
            self.operand(value, level, 0)?;
        }
        Ok(())
    }

    fn update(&mut self, update: &Update) -> Result<(), Refusal> {
        let Update {
            update_token: _,
            optimizer_hints,
            table,
            on_cluster,
            assignments,
            from,
            selection,
            returning,
            output,
            or,
            order_by,
            limit,
            settings,
        } = update;
        if from.is_some() {
            return refuse("UPDATE … FROM");
        }
        if !optimizer_hints.is_empty()
            || on_cluster.is_some()
            || output.is_some()
            || or.is_some()
            || !order_by.is_empty()
            || limit.is_some()
            || settings.is_some()
        {
            return refuse(format!("UPDATE clause not allowed in {}", snippet(update)));
        }
        let TableWithJoins { relation, joins } = table;
        if !joins.is_empty() {
            return refuse("UPDATE with a join");
        }
        let target = self.plain_table(relation, "UPDATE", true)?;
        let level = [target];
        self.assignments(assignments, &level, &level[0], "UPDATE SET")?;
        if let Some(selection) = selection {
            self.condition(selection, &level, 0)?;
        }
        self.require_predicate(&level[0], selection.as_ref(), "UPDATE", "WHERE")?;
        self.returning(returning.as_ref(), &level)
    }

    fn delete(&mut self, delete: &Delete) -> Result<(), Refusal> {
        let Delete {
            delete_token: _,
            optimizer_hints,
            tables,
            from,
            on_cluster,
            using,
            selection,
            returning,
            output,
            order_by,
            limit,
            settings,
        } = delete;
        if using.is_some() {
            return refuse("DELETE … USING");
        }
        if !optimizer_hints.is_empty()
            || !tables.is_empty()
            || on_cluster.is_some()
            || output.is_some()
            || !order_by.is_empty()
            || limit.is_some()
            || settings.is_some()
        {
            return refuse(format!("DELETE clause not allowed in {}", snippet(delete)));
        }
        let FromTable::WithFromKeyword(from) = from else {
            return refuse("DELETE without FROM");
        };
        let [TableWithJoins { relation, joins }] = from.as_slice() else {
            return refuse("DELETE from more than one table");
        };
        if !joins.is_empty() {
            return refuse("DELETE with a join");
        }
        let target = self.plain_table(relation, "DELETE", true)?;
        let level = [target];
        if let Some(selection) = selection {
            self.condition(selection, &level, 0)?;
        }
        self.require_predicate(&level[0], selection.as_ref(), "DELETE", "WHERE")?;
        self.returning(returning.as_ref(), &level)
    }

    fn insert(&mut self, insert: &Insert) -> Result<(), Refusal> {
        let Insert {
            insert_token: _,
            optimizer_hints,
            or,
            ignore,
            into,
            table,
            table_alias,
            columns,
            by_name,
            overwrite,
            source,
            assignments,
            partitioned,
            after_columns,
            overriding,
            has_table_keyword,
            on,
            returning,
            output,
            replace_into,
            priority,
            insert_alias,
            settings,
            format_clause,
            multi_table_insert_type,
            multi_table_into_clauses,
            multi_table_when_clauses,
            multi_table_else_clause,
        } = insert;
        if or.is_some() || *replace_into || *ignore {
            return refuse("INSERT OR … / REPLACE / IGNORE");
        }
        if !optimizer_hints.is_empty()
            || !*into
            || table_alias.is_some()
            || *by_name
            || *overwrite
            || !assignments.is_empty()
            || partitioned.is_some()
            || !after_columns.is_empty()
            || overriding.is_some()
            || *has_table_keyword
            || output.is_some()
            || priority.is_some()
            || insert_alias.is_some()
            || settings.is_some()
            || format_clause.is_some()
            || multi_table_insert_type.is_some()
            || !multi_table_into_clauses.is_empty()
            || !multi_table_when_clauses.is_empty()
            || multi_table_else_clause.is_some()
        {
            return refuse(format!("INSERT clause not allowed in {}", snippet(insert)));
        }
        let TableObject::TableName(name) = table else {
            return refuse("INSERT into a table function or query");
        };
        let target = self.table(name, "INSERT", true)?;
        if columns.is_empty() {
            return refuse("INSERT without a column list");
        }
        let mut names: Vec<&str> = Vec::with_capacity(columns.len());
        for column in columns {
            let column = plain_name(column, "column")?;
            if !target.has_column(column) {
                return refuse(format!(
                    "unknown column \"{}\".\"{column}\" in INSERT",
                    target.name
                ));
            }
            if names.contains(&column) {
                return refuse(format!("column \"{column}\" listed twice in INSERT"));
            }
            names.push(column);
        }
        let tenant_position = if self.tenant && target.kind == Some(TableKind::Tenant) {
            match names.iter().position(|c| *c == "tenant_id") {
                Some(position) => Some(position),
                None => {
                    return refuse(format!(
                        "INSERT into \"{}\" without \"tenant_id\" in its column list",
                        target.name
                    ));
                }
            }
        } else {
            None
        };
        let Some(source) = source else {
            return refuse("INSERT without VALUES");
        };
        self.insert_values(source, names.len(), tenant_position)?;
        let level = [target];
        if let Some(on) = on {
            self.on_conflict(on, &level[0], &level)?;
        }
        self.returning(returning.as_ref(), &level)
    }

    fn insert_values(
        &mut self,
        source: &Query,
        width: usize,
        tenant_position: Option<usize>,
    ) -> Result<(), Refusal> {
        let Query {
            with,
            body,
            order_by,
            limit_clause,
            fetch,
            locks,
            for_clause,
            settings,
            format_clause,
            pipe_operators,
        } = source;
        if with.is_some()
            || order_by.is_some()
            || limit_clause.is_some()
            || fetch.is_some()
            || !locks.is_empty()
            || for_clause.is_some()
            || settings.is_some()
            || format_clause.is_some()
            || !pipe_operators.is_empty()
        {
            return refuse(format!("INSERT source not allowed: {}", snippet(source)));
        }
        let SetExpr::Values(Values {
            explicit_row,
            value_keyword,
            rows,
        }) = &**body
        else {
            return refuse(format!("INSERT … SELECT (source {})", snippet(body)));
        };
        if *explicit_row || *value_keyword || rows.is_empty() {
            return refuse(format!("INSERT VALUES form not allowed: {}", snippet(body)));
        }
        for row in rows {
            let row = &row.content;
            if row.len() != width {
                return refuse(format!(
                    "INSERT row of {} values for {width} columns",
                    row.len()
                ));
            }
            for (position, value) in row.iter().enumerate() {
                if Some(position) == tenant_position {
                    match value {
                        Expr::Value(v) => match &v.value {
                            sqlparser::ast::Value::Placeholder(text) => {
                                let index = self.placeholder(text)?;
                                self.tenant_params.insert(index);
                            }
                            _ => {
                                return refuse(format!(
                                    "\"tenant_id\" value {} is not a placeholder",
                                    snippet(value)
                                ));
                            }
                        },
                        _ => {
                            return refuse(format!(
                                "\"tenant_id\" value {} is not a placeholder",
                                snippet(value)
                            ));
                        }
                    }
                } else if !(self.constant(value)?
                    || matches!(value, Expr::Identifier(Ident { value, quote_style: None, .. }) if value.eq_ignore_ascii_case("DEFAULT")))
                {
                    return refuse(format!(
                        "INSERT value {} is not a placeholder",
                        snippet(value)
                    ));
                }
            }
        }
        Ok(())
    }

    fn on_conflict(&mut self, on: &OnInsert, target: &Rel, level: &Level) -> Result<(), Refusal> {
        let OnInsert::OnConflict(OnConflict {
            conflict_target,
            action,
        }) = on
        else {
            return refuse("ON DUPLICATE KEY UPDATE");
        };
        match conflict_target {
            None => {}
            Some(ConflictTarget::Columns { columns, predicate }) => {
                if predicate.is_some() {
                    return refuse("ON CONFLICT (…) WHERE");
                }
                let mut has_tenant = false;
                for column in columns {
                    let column = quoted(column, "column")?;
                    if !target.has_column(column) {
                        return refuse(format!("unknown column \"{column}\" in ON CONFLICT"));
                    }
                    has_tenant |= column == "tenant_id";
                }
                if self.tenant && target.kind == Some(TableKind::Tenant) && !has_tenant {
                    return refuse("ON CONFLICT target without \"tenant_id\"");
                }
            }
            Some(ConflictTarget::OnConstraint(_)) => return refuse("ON CONFLICT ON CONSTRAINT"),
        }
        match action {
            OnConflictAction::DoNothing => Ok(()),
            OnConflictAction::DoUpdate(DoUpdate {
                assignments,
                selection,
            }) => {
                if conflict_target.is_none() {
                    return refuse("ON CONFLICT DO UPDATE without a conflict target");
                }
                if selection.is_some() {
                    return refuse("ON CONFLICT DO UPDATE … WHERE");
                }
                let mut scope = level.to_vec();
                scope.push(Rel {
                    name: "excluded".to_owned(),
                    kind: None,
                    columns: target.columns.clone(),
                });
                self.assignments(assignments, &scope, target, "ON CONFLICT DO UPDATE SET")
            }
        }
    }
}

/// The name and plain unnamed arguments of a function call without any modifier.
fn plain_function(function: &Function) -> Result<(&str, &[FunctionArg]), Refusal> {
    let Function {
        name,
        uses_odbc_syntax,
        parameters,
        args,
        within_group,
        filter,
        null_treatment,
        over,
    } = function;
    if over.is_some() {
        return refuse(format!("window function {}", snippet(function)));
    }
    if *uses_odbc_syntax
        || !matches!(parameters, FunctionArguments::None)
        || !within_group.is_empty()
        || filter.is_some()
        || null_treatment.is_some()
    {
        return refuse(format!("function modifiers in {}", snippet(function)));
    }
    let [
        ObjectNamePart::Identifier(Ident {
            value,
            quote_style: None,
            ..
        }),
    ] = name.0.as_slice()
    else {
        return refuse(format!("function {} is not a plain name", snippet(name)));
    };
    match args {
        FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args,
            clauses,
        }) if clauses.is_empty() => Ok((value, args)),
        _ => refuse(format!(
            "function arguments not allowed in {}",
            snippet(function)
        )),
    }
}

/// A refusal reason naming the construct found.
fn describe(expr: &Expr) -> String {
    let what = match expr {
        Expr::Exists { .. } => "EXISTS subquery",
        Expr::Subquery(_) => "scalar subquery",
        Expr::AnyOp { .. } | Expr::AllOp { .. } => "ANY/ALL comparison",
        Expr::Cast { .. } => "cast",
        Expr::Case { .. } => "CASE",
        Expr::Function(_) => "function",
        Expr::Value(_) => "literal",
        Expr::BinaryOp { .. } => "operator",
        Expr::UnaryOp { .. } => "unary operator",
        _ => "expression",
    };
    format!("{what} not allowed: {}", snippet(expr))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const T: uuid::Uuid = uuid::Uuid::from_u128(0x1111);
    const OTHER: uuid::Uuid = uuid::Uuid::from_u128(0x2222);

    struct TestCatalog;

    fn entry(kind: TableKind, columns: &[&str]) -> Option<(TableKind, Arc<[String]>)> {
        Some((kind, columns.iter().map(|c| (*c).to_owned()).collect()))
    }

    impl Catalog for TestCatalog {
        fn table(&self, name: &str) -> Option<(TableKind, Arc<[String]>)> {
            match name {
                "tenants" => entry(TableKind::Root, &["id", "name"]),
                "currencies" => entry(TableKind::Global, &["code", "name"]),
                "accounts" => entry(
                    TableKind::Tenant,
                    &[
                        "tenant_id",
                        "id",
                        "name",
                        "currency",
                        "deleted_at",
                        "updated_at",
                        "version",
                    ],
                ),
                "people" => entry(
                    TableKind::Tenant,
                    &[
                        "tenant_id",
                        "id",
                        "account_id",
                        "name",
                        "score",
                        "email",
                        "deleted_at",
                        "updated_at",
                        "version",
                    ],
                ),
                "api_keys" => entry(TableKind::Tenant, &["tenant_id", "id", "prefix", "hash"]),
                _ => None,
            }
        }
    }

    /// The SQLite text of a PostgreSQL text: `$1..$n` (which must appear in order)
    /// become `?`, exactly as sea-query's SqliteQueryBuilder writes them.
    fn to_sqlite(pg: &str) -> String {
        let mut out = String::new();
        let mut rest = pg;
        let mut expected = 1;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let digits: String = rest[at + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            assert_eq!(
                digits.parse::<usize>().unwrap(),
                expected,
                "placeholders out of order in {pg}"
            );
            expected += 1;
            out.push('?');
            rest = &rest[at + 1 + digits.len()..];
        }
        out.push_str(rest);
        out
    }

    /// How many placeholders a PostgreSQL text has.
    fn param_count(pg: &str) -> usize {
        to_sqlite(pg).matches('?').count()
    }

    /// Bound values: the tenant at `tenant_params`, an integer elsewhere.
    fn values(count: usize, tenant_params: &[usize], tenant: uuid::Uuid) -> Vec<Value> {
        (0..count)
            .map(|i| {
                if tenant_params.contains(&i) {
                    Value::Uuid(Some(tenant))
                } else {
                    Value::Int(Some(0))
                }
            })
            .collect()
    }

    fn accepted_in(
        dialect: Dialect,
        sql: &str,
        count: usize,
        tenant_params: &[usize],
        tables: &[&str],
    ) {
        let analysis = analyze(dialect, true, sql, &TestCatalog)
            .unwrap_or_else(|e| panic!("{dialect:?} refused {sql}\n  because {e}"));
        assert_eq!(analysis.tenant_params, tenant_params, "{dialect:?}: {sql}");
        assert_eq!(&*analysis.tables, tables, "{dialect:?}: {sql}");
        let guard = Guard::new(16);
        let checked = guard
            .check(
                dialect,
                sql,
                &values(count, tenant_params, T),
                Scope::Tenant(T),
                &TestCatalog,
            )
            .unwrap();
        assert_eq!(&*checked.tables, tables);
        let unscoped = guard
            .check(dialect, sql, &[], Scope::Unscoped, &TestCatalog)
            .unwrap();
        assert_eq!(&*unscoped.tables, tables);
        if !tenant_params.is_empty() {
            let refused = guard
                .check(
                    dialect,
                    sql,
                    &values(count, tenant_params, OTHER),
                    Scope::Tenant(T),
                    &TestCatalog,
                )
                .unwrap_err();
            assert!(refused.0.contains("another tenant"), "{refused}");
        }
    }

    /// Accepted on both backends under a tenant handle, with exactly these tenant
    /// parameters (0-based) and tables.
    fn accepted(pg: &str, tenant_params: &[usize], tables: &[&str]) {
        let count = param_count(pg);
        accepted_in(Dialect::Postgres, pg, count, tenant_params, tables);
        accepted_in(
            Dialect::Sqlite,
            &to_sqlite(pg),
            count,
            tenant_params,
            tables,
        );
    }

    fn refused_in(dialect: Dialect, sql: &str, scope: Scope, needle: &str) {
        // Every parameter holds the tenant: only the structure can refuse.
        let values = vec![Value::Uuid(Some(T)); 16];
        let guard = Guard::new(16);
        match guard.check(dialect, sql, &values, scope, &TestCatalog) {
            Ok(_) => panic!("{dialect:?} accepted {sql}"),
            Err(Refusal(reason)) => {
                assert!(
                    reason.contains(needle),
                    "{dialect:?}: {sql}\n  refused for {reason:?}, expected {needle:?}"
                );
            }
        }
    }

    /// Refused on both backends under a tenant handle, for a reason containing `needle`.
    fn refused(pg: &str, needle: &str) {
        refused_in(Dialect::Postgres, pg, Scope::Tenant(T), needle);
        refused_in(Dialect::Sqlite, &to_sqlite(pg), Scope::Tenant(T), needle);
    }

    macro_rules! people {
        () => {
            r#""people"."tenant_id", "people"."id", "people"."account_id", "people"."name", "people"."score", "people"."email", "people"."deleted_at", "people"."updated_at", "people"."version""#
        };
    }
    macro_rules! accounts {
        () => {
            r#""accounts"."tenant_id", "accounts"."id", "accounts"."name", "accounts"."currency", "accounts"."deleted_at", "accounts"."updated_at", "accounts"."version""#
        };
    }
    const PEOPLE_RETURNING: &str = r#"RETURNING "tenant_id", "id", "account_id", "name", "score", "email", "deleted_at", "updated_at", "version""#;

    // ---- accepted: the texts sea-orm 2.0.4 / sea-query 1.0.2 execute for tenancy's builders

    #[test]
    fn plain_select_with_and_or_filters() {
        accepted(
            concat!(
                "SELECT ",
                people!(),
                r#" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."score" > $2 AND ("people"."score" = $3 OR "people"."score" = $4) AND "people"."deleted_at" IS NULL"#
            ),
            &[0],
            &["people"],
        );
    }

    #[test]
    fn one_with_limit() {
        accepted(
            concat!(
                "SELECT ",
                people!(),
                r#" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."id" = $2 LIMIT $3"#
            ),
            &[0],
            &["people"],
        );
    }

    #[test]
    fn inner_join_with_on_predicate() {
        accepted(
            concat!(
                "SELECT ",
                people!(),
                r#" FROM "people" INNER JOIN "accounts" ON "people"."tenant_id" = "accounts"."tenant_id" AND "people"."account_id" = "accounts"."id" AND "accounts"."tenant_id" = $1 WHERE "people"."tenant_id" = $2"#
            ),
            &[0, 1],
            &["accounts", "people"],
        );
    }

    #[test]
    fn join_to_the_tenant_root_and_to_global_data() {
        accepted(
            concat!(
                "SELECT ",
                accounts!(),
                r#" FROM "accounts" INNER JOIN "tenants" ON "accounts"."tenant_id" = "tenants"."id" AND "tenants"."id" = $1 WHERE "accounts"."tenant_id" = $2"#
            ),
            &[0, 1],
            &["accounts", "tenants"],
        );
        accepted(
            concat!(
                "SELECT ",
                accounts!(),
                r#" FROM "accounts" LEFT JOIN "currencies" ON "accounts"."currency" = "currencies"."code" WHERE "accounts"."tenant_id" = $1"#
            ),
            &[0],
            &["accounts", "currencies"],
        );
    }

    #[test]
    fn select_also_aliases_left_join_and_keyset_desc() {
        accepted(
            r#"SELECT "people"."tenant_id" AS "A_tenant_id", "people"."id" AS "A_id", "people"."account_id" AS "A_account_id", "people"."name" AS "A_name", "people"."score" AS "A_score", "people"."email" AS "A_email", "people"."deleted_at" AS "A_deleted_at", "people"."updated_at" AS "A_updated_at", "people"."version" AS "A_version", "accounts"."tenant_id" AS "B_tenant_id", "accounts"."id" AS "B_id", "accounts"."name" AS "B_name", "accounts"."currency" AS "B_currency", "accounts"."deleted_at" AS "B_deleted_at", "accounts"."updated_at" AS "B_updated_at", "accounts"."version" AS "B_version" FROM "people" LEFT JOIN "accounts" ON "people"."tenant_id" = "accounts"."tenant_id" AND "people"."account_id" = "accounts"."id" AND "accounts"."tenant_id" = $1 WHERE "people"."tenant_id" = $2 AND "accounts"."id" IS NOT NULL AND ("people"."updated_at", "people"."id") < ($3, $4) ORDER BY "people"."updated_at" DESC, "people"."id" DESC LIMIT $5"#,
            &[0, 1],
            &["accounts", "people"],
        );
    }

    #[test]
    fn select_with_related_ordered_by_parent_key() {
        accepted(
            r#"SELECT "accounts"."tenant_id" AS "A_tenant_id", "accounts"."id" AS "A_id", "accounts"."name" AS "A_name", "accounts"."currency" AS "A_currency", "accounts"."deleted_at" AS "A_deleted_at", "accounts"."updated_at" AS "A_updated_at", "accounts"."version" AS "A_version", "people"."tenant_id" AS "B_tenant_id", "people"."id" AS "B_id", "people"."account_id" AS "B_account_id", "people"."name" AS "B_name", "people"."score" AS "B_score", "people"."email" AS "B_email", "people"."deleted_at" AS "B_deleted_at", "people"."updated_at" AS "B_updated_at", "people"."version" AS "B_version" FROM "accounts" LEFT JOIN "people" ON "accounts"."tenant_id" = "people"."tenant_id" AND "accounts"."id" = "people"."account_id" AND "people"."tenant_id" = $1 WHERE "accounts"."tenant_id" = $2 ORDER BY "accounts"."tenant_id" ASC, "accounts"."id" ASC"#,
            &[0, 1],
            &["accounts", "people"],
        );
    }

    #[test]
    fn in_and_not_in_scoped_subqueries() {
        accepted(
            concat!(
                "SELECT ",
                people!(),
                r#" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."account_id" IN (SELECT "accounts"."id" FROM "accounts" WHERE "accounts"."tenant_id" = $2 AND "accounts"."name" = $3) AND "people"."account_id" NOT IN (SELECT "accounts"."id" FROM "accounts" WHERE "accounts"."tenant_id" = $4 AND "accounts"."deleted_at" IS NOT NULL)"#
            ),
            &[0, 1, 3],
            &["accounts", "people"],
        );
    }

    #[test]
    fn keyset_tuple_comparison_order_and_limit() {
        accepted(
            concat!(
                "SELECT ",
                people!(),
                r#" FROM "people" WHERE "people"."tenant_id" = $1 AND ("people"."score", "people"."id") > ($2, $3) ORDER BY "people"."score" ASC, "people"."id" ASC LIMIT $4"#
            ),
            &[0],
            &["people"],
        );
        accepted(
            concat!(
                "SELECT ",
                people!(),
                r#" FROM "people" WHERE "people"."tenant_id" = $1 ORDER BY "people"."id" ASC LIMIT $2 OFFSET $3"#
            ),
            &[0],
            &["people"],
        );
    }

    #[test]
    fn count_over_a_derived_table() {
        accepted(
            concat!(
                "SELECT COUNT(*) AS num_items FROM (SELECT ",
                people!(),
                r#" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."deleted_at" IS NULL) AS "sub_query""#
            ),
            &[0],
            &["people"],
        );
    }

    #[test]
    fn own_tenant_row() {
        accepted(
            r#"SELECT "tenants"."id", "tenants"."name" FROM "tenants" WHERE "tenants"."id" = $1 LIMIT $2"#,
            &[0],
            &["tenants"],
        );
    }

    #[test]
    fn lower_like_with_escape_as_each_backend_writes_it() {
        let tail = r#" FROM "accounts" WHERE "accounts"."tenant_id" = $1 AND LOWER("accounts"."name") LIKE $2 ESCAPE "#;
        let pg = format!("SELECT {}{tail}E'\\\\'", accounts!());
        assert!(pg.ends_with(r"ESCAPE E'\\'"));
        accepted_in(Dialect::Postgres, &pg, 2, &[0], &["accounts"]);
        let sqlite = to_sqlite(&format!("SELECT {}{tail}'\\'", accounts!()));
        assert!(sqlite.ends_with(r"LIKE ? ESCAPE '\'"));
        accepted_in(Dialect::Sqlite, &sqlite, 2, &[0], &["accounts"]);
    }

    #[test]
    fn in_lists_empty_in_between_and_contains() {
        accepted(
            concat!(
                "SELECT ",
                people!(),
                r#" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."id" IN ($2, $3) AND "people"."id" NOT IN ($4) AND $5 = $6 AND $7 = $8 AND "people"."name" <> $9 AND ("people"."score" BETWEEN $10 AND $11) AND "people"."name" LIKE $12 AND "people"."name" LIKE $13"#
            ),
            &[0],
            &["people"],
        );
        // Empty conditions and `not()` as sea-query writes them.
        accepted(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND FALSE AND TRUE AND (NOT "people"."score" = $2)"#,
            &[0],
            &["people"],
        );
    }

    #[test]
    fn insert_with_returning() {
        accepted(
            &format!(
                r#"INSERT INTO "people" ("tenant_id", "id", "account_id", "name", "score", "email") VALUES ($1, $2, $3, $4, $5, $6) {PEOPLE_RETURNING}"#
            ),
            &[0],
            &["people"],
        );
    }

    #[test]
    fn multi_row_insert() {
        accepted(
            r#"INSERT INTO "people" ("tenant_id", "id", "account_id", "name", "score", "email") VALUES ($1, $2, $3, $4, $5, $6), ($7, $8, $9, $10, $11, $12)"#,
            &[0, 6],
            &["people"],
        );
        // A row that leaves a column to its default.
        accepted(
            r#"INSERT INTO "people" ("id", "tenant_id", "name") VALUES ($1, $2, $3), ($4, $5, DEFAULT)"#,
            &[1, 4],
            &["people"],
        );
    }

    #[test]
    fn upserts() {
        accepted(
            r#"INSERT INTO "accounts" ("tenant_id", "id", "name", "updated_at", "version") VALUES ($1, $2, $3, $4, $5) ON CONFLICT ("tenant_id", "id") DO UPDATE SET "name" = "excluded"."name", "currency" = "excluded"."currency" RETURNING "tenant_id", "id", "name", "currency", "deleted_at", "updated_at", "version""#,
            &[0],
            &["accounts"],
        );
        accepted(
            r#"INSERT INTO "accounts" ("tenant_id", "id", "name") VALUES ($1, $2, $3) ON CONFLICT ("tenant_id", "id") DO NOTHING"#,
            &[0],
            &["accounts"],
        );
    }

    #[test]
    fn update_by_primary_key_with_version_guard_and_returning() {
        accepted(
            &format!(
                r#"UPDATE "people" SET "name" = $1, "score" = $2, "version" = $3 WHERE "people"."tenant_id" = $4 AND "people"."id" = $5 AND "people"."version" = $6 {PEOPLE_RETURNING}"#
            ),
            &[3],
            &["people"],
        );
    }

    #[test]
    fn update_many_with_arithmetic() {
        accepted(
            r#"UPDATE "people" SET "score" = "score" + $1, "email" = $2 WHERE "people"."tenant_id" = $3 AND "people"."name" = $4"#,
            &[2],
            &["people"],
        );
    }

    #[test]
    fn delete_many() {
        accepted(
            r#"DELETE FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."score" < $2"#,
            &[0],
            &["people"],
        );
    }

    #[test]
    fn global_tables_need_no_predicate() {
        accepted(
            r#"SELECT "currencies"."code", "currencies"."name" FROM "currencies""#,
            &[],
            &["currencies"],
        );
    }

    // ---- the tenant parameter values, the SQLite index mapping and the cache

    #[test]
    fn sqlite_positional_index_when_the_tenant_is_not_the_first_placeholder() {
        let sql = r#"UPDATE "people" SET "name" = ?, "score" = ? WHERE "people"."tenant_id" = ? AND "people"."id" = ?"#;
        let guard = Guard::new(4);
        let ok = values(4, &[2], T);
        guard
            .check(Dialect::Sqlite, sql, &ok, Scope::Tenant(T), &TestCatalog)
            .unwrap();
        // The tenant in the wrong position is not enough.
        let wrong = values(4, &[0], T);
        let refusal = guard
            .check(Dialect::Sqlite, sql, &wrong, Scope::Tenant(T), &TestCatalog)
            .unwrap_err();
        assert!(refusal.0.contains("parameter #3"), "{refusal}");
        // Same on PostgreSQL with numbered placeholders out of textual order.
        let pg = r#"UPDATE "people" SET "name" = $2, "score" = $3 WHERE $1 = "people"."tenant_id" AND "people"."id" = $4"#;
        assert_eq!(
            analyze(Dialect::Postgres, true, pg, &TestCatalog)
                .unwrap()
                .tenant_params,
            [0]
        );
    }

    #[test]
    fn another_tenants_uuid_or_a_string_in_the_tenant_parameter_is_refused() {
        let sql = r#"DELETE FROM "people" WHERE "people"."tenant_id" = $1"#;
        let guard = Guard::new(4);
        for (bad, needle) in [
            (Value::Uuid(Some(OTHER)), "another tenant"),
            (Value::String(Some(T.to_string())), "not a non-null UUID"),
            (Value::Uuid(None), "not a non-null UUID"),
        ] {
            let refusal = guard
                .check(
                    Dialect::Postgres,
                    sql,
                    &[bad],
                    Scope::Tenant(T),
                    &TestCatalog,
                )
                .unwrap_err();
            assert!(refusal.0.contains(needle), "{refusal}");
        }
        let refusal = guard
            .check(Dialect::Postgres, sql, &[], Scope::Tenant(T), &TestCatalog)
            .unwrap_err();
        assert!(refusal.0.contains("missing"), "{refusal}");
    }

    #[test]
    fn the_cache_keeps_the_verdict_and_still_checks_the_values() {
        let sql = r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."name" = $2"#;
        let guard = Guard::new(4);
        let good = [Value::Uuid(Some(T)), Value::String(Some("n".into()))];
        let first = guard
            .check(
                Dialect::Postgres,
                sql,
                &good,
                Scope::Tenant(T),
                &TestCatalog,
            )
            .unwrap();
        let second = guard
            .check(
                Dialect::Postgres,
                sql,
                &good,
                Scope::Tenant(T),
                &TestCatalog,
            )
            .unwrap();
        assert_eq!(first.tables, second.tables);
        assert_eq!(guard.cache.len(), 1);
        // The borrowed key finds the owned one (same hash, same equality).
        assert!(
            guard
                .cache
                .get(&KeyRef(Dialect::Postgres, true, sql))
                .is_some()
        );
        assert!(
            guard
                .cache
                .get(&KeyRef(Dialect::Sqlite, true, sql))
                .is_none()
        );
        let bad = [Value::Uuid(Some(OTHER)), Value::String(Some("n".into()))];
        assert!(
            guard
                .check(Dialect::Postgres, sql, &bad, Scope::Tenant(T), &TestCatalog)
                .is_err()
        );
        // Another tenant with its own id passes on the same cached verdict.
        let theirs = [Value::Uuid(Some(OTHER)), Value::String(Some("n".into()))];
        guard
            .check(
                Dialect::Postgres,
                sql,
                &theirs,
                Scope::Tenant(OTHER),
                &TestCatalog,
            )
            .unwrap();
        assert_eq!(guard.cache.len(), 1);
        // The unscoped verdict is cached separately.
        guard
            .check(Dialect::Postgres, sql, &[], Scope::Unscoped, &TestCatalog)
            .unwrap();
        assert_eq!(guard.cache.len(), 2);
        // A refused statement is refused again (not cached as accepted).
        let refused = r#"SELECT "people"."id" FROM "people""#;
        for _ in 0..2 {
            assert!(
                guard
                    .check(
                        Dialect::Postgres,
                        refused,
                        &[],
                        Scope::Tenant(T),
                        &TestCatalog
                    )
                    .is_err()
            );
        }
    }

    #[test]
    fn a_table_unknown_at_first_is_accepted_once_registered() {
        struct Growing(Mutex<bool>);
        impl Catalog for Growing {
            fn table(&self, name: &str) -> Option<(TableKind, Arc<[String]>)> {
                match name {
                    "notes" if *self.0.lock().unwrap() => {
                        entry(TableKind::Tenant, &["tenant_id", "id"])
                    }
                    _ => TestCatalog.table(name),
                }
            }
        }
        let catalog = Growing(Mutex::new(false));
        let sql = r#"SELECT "notes"."id" FROM "notes" WHERE "notes"."tenant_id" = $1"#;
        let guard = Guard::new(4);
        let tenant = [Value::Uuid(Some(T))];
        let refusal = guard
            .check(Dialect::Postgres, sql, &tenant, Scope::Tenant(T), &catalog)
            .unwrap_err();
        assert!(refusal.0.contains("unknown table"), "{refusal}");
        *catalog.0.lock().unwrap() = true;
        let checked = guard
            .check(Dialect::Postgres, sql, &tenant, Scope::Tenant(T), &catalog)
            .unwrap();
        assert_eq!(&*checked.tables, ["notes"]);
    }

    #[test]
    fn the_unscoped_handle_skips_the_tenant_rules_but_not_the_structure() {
        let un = |dialect, sql: &str| {
            Guard::new(1).check(dialect, sql, &[], Scope::Unscoped, &TestCatalog)
        };
        for sql in [
            r#"INSERT INTO "tenants" ("id", "name") VALUES ($1, $2)"#,
            r#"UPDATE "tenants" SET "name" = $1 WHERE "tenants"."id" = $2"#,
            r#"SELECT "api_keys"."tenant_id", "api_keys"."hash" FROM "api_keys" WHERE "api_keys"."prefix" = $1 LIMIT $2"#,
            r#"UPDATE "currencies" SET "name" = $1 WHERE "currencies"."code" = $2"#,
        ] {
            let checked = un(Dialect::Postgres, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            assert_eq!(checked.tables.len(), 1);
            un(Dialect::Sqlite, &to_sqlite(sql)).unwrap();
        }
        for (sql, needle) in [
            (
                r#"SELECT "api_keys"."hash" FROM "api_keys" WHERE pg_sleep($1) IS NULL"#,
                "pg_sleep",
            ),
            (
                r#"SELECT "api_keys"."hash" FROM "api_keys" WHERE "api_keys"."prefix" = 'x'"#,
                "inline literal",
            ),
            (r#"SELECT "hash" FROM "pg_shadow""#, "unknown table"),
            (r#"DROP TABLE "api_keys""#, "statement not allowed"),
        ] {
            refused_in(Dialect::Postgres, sql, Scope::Unscoped, needle);
        }
    }

    // ---- refused

    #[test]
    fn missing_tenant_predicate() {
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."score" > $1"#,
            r#"table "people" in FROM has no top-level "people"."tenant_id" = <tenant> in WHERE"#,
        );
        refused(r#"SELECT "people"."id" FROM "people""#, "has no top-level");
        refused(
            r#"SELECT "tenants"."name" FROM "tenants""#,
            r#"no top-level "tenants"."id" = <tenant>"#,
        );
        refused(
            r#"UPDATE "people" SET "name" = $1"#,
            "in UPDATE has no top-level",
        );
        refused(r#"DELETE FROM "people""#, "in DELETE has no top-level");
        // Qualified only: the bare column is not the predicate.
        refused(
            r#"DELETE FROM "people" WHERE "tenant_id" = $1"#,
            "has no top-level",
        );
    }

    #[test]
    fn predicate_under_or_or_not() {
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 OR TRUE"#,
            "has no top-level",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND (TRUE) OR (TRUE)"#,
            "has no top-level",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE ("people"."tenant_id" = $1 OR "people"."score" > $2) AND "people"."name" = $3"#,
            "has no top-level",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE NOT ("people"."tenant_id" = $1)"#,
            "has no top-level",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE NOT NOT ("people"."tenant_id" = $1)"#,
            "has no top-level",
        );
    }

    #[test]
    fn predicate_against_a_literal_or_a_column() {
        refused(
            &format!(r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = '{T}'"#),
            "inline literal",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = "people"."id""#,
            "has no top-level",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" <> $1"#,
            "has no top-level",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 + $2"#,
            "has no top-level",
        );
    }

    #[test]
    fn joined_table_without_its_on_predicate() {
        // In the WHERE is not enough: the predicate belongs in the ON clause.
        refused(
            r#"SELECT "people"."id" FROM "people" LEFT JOIN "accounts" ON "people"."account_id" = "accounts"."id" WHERE "people"."tenant_id" = $1 AND "accounts"."tenant_id" = $2"#,
            r#"table "accounts" in LEFT JOIN has no top-level "accounts"."tenant_id" = <tenant> in its ON clause"#,
        );
        refused(
            r#"SELECT "people"."id" FROM "people" INNER JOIN "accounts" ON "people"."account_id" = "accounts"."id" WHERE "people"."tenant_id" = $1"#,
            r#"table "accounts" in JOIN has no top-level"#,
        );
        refused(
            r#"SELECT "people"."id" FROM "people" INNER JOIN "accounts" ON "people"."account_id" = "accounts"."id" OR "accounts"."tenant_id" = $1 WHERE "people"."tenant_id" = $2"#,
            "has no top-level",
        );
        // The other table's predicate does not count.
        refused(
            r#"SELECT "people"."id" FROM "people" INNER JOIN "accounts" ON "people"."tenant_id" = $1 WHERE "people"."tenant_id" = $2"#,
            r#"table "accounts" in JOIN"#,
        );
        refused(
            r#"SELECT "accounts"."id" FROM "accounts" INNER JOIN "tenants" ON "accounts"."tenant_id" = "tenants"."id" WHERE "accounts"."tenant_id" = $1"#,
            r#""tenants"."id" = <tenant>"#,
        );
    }

    #[test]
    fn right_full_cross_natural_using_and_comma_joins() {
        let on = r#" ON "people"."account_id" = "accounts"."id" AND "accounts"."tenant_id" = $1 WHERE "people"."tenant_id" = $2"#;
        for join in [
            "RIGHT JOIN",
            "RIGHT OUTER JOIN",
            "FULL OUTER JOIN",
            "FULL JOIN",
        ] {
            refused(
                &format!(r#"SELECT "people"."id" FROM "people" {join} "accounts"{on}"#),
                "join type not allowed",
            );
        }
        refused(
            r#"SELECT "people"."id" FROM "people" CROSS JOIN "accounts" WHERE "people"."tenant_id" = $1 AND "accounts"."tenant_id" = $2"#,
            "join type not allowed",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" NATURAL JOIN "accounts" WHERE "people"."tenant_id" = $1"#,
            "without ON",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" JOIN "accounts" USING ("tenant_id") WHERE "people"."tenant_id" = $1"#,
            "without ON",
        );
        refused(
            r#"SELECT "people"."id" FROM "people", "accounts" WHERE "people"."tenant_id" = $1 AND "accounts"."tenant_id" = $2"#,
            "comma join",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" INNER JOIN "people" ON "people"."tenant_id" = $1 WHERE "people"."tenant_id" = $2"#,
            "appears twice",
        );
    }

    #[test]
    fn unknown_tables_views_and_system_catalogs() {
        refused(
            r#"SELECT "secrets"."id" FROM "secrets" WHERE "secrets"."tenant_id" = $1"#,
            r#"unknown table "secrets""#,
        );
        refused(r#"SELECT "relname" FROM "pg_class""#, "unknown table");
        refused(r#"SELECT "name" FROM "sqlite_master""#, "unknown table");
        refused(
            r#"SELECT "people_view"."id" FROM "people_view""#,
            "unknown table",
        );
        refused(
            r#"SELECT "table_name" FROM "information_schema"."tables""#,
            "not a plain name",
        );
        refused(
            r#"SELECT "relname" FROM pg_catalog.pg_class"#,
            "not a plain name",
        );
        // Unquoted names are not what sea-query writes.
        refused(
            r#"SELECT "people"."id" FROM people WHERE "people"."tenant_id" = $1"#,
            "not a double-quoted identifier",
        );
    }

    #[test]
    fn schema_qualified_table_and_table_aliases() {
        refused(
            r#"SELECT "people"."id" FROM "public"."people" WHERE "people"."tenant_id" = $1"#,
            "not a plain name",
        );
        refused(
            r#"SELECT "p"."id" FROM "people" AS "p" WHERE "p"."tenant_id" = $1"#,
            "table alias",
        );
        refused(
            r#"SELECT "x"."id" FROM (SELECT "people"."id" FROM "people") AS "x""#,
            r#"table "people" in FROM has no top-level"#,
        );
        refused(
            r#"SELECT COUNT(*) AS n FROM (SELECT "accounts"."id" FROM "accounts" WHERE "accounts"."tenant_id" = $1) AS "people""#,
            "names a table",
        );
    }

    #[test]
    fn cte_union_and_set_operations() {
        refused(
            r#"WITH "x" AS (SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1) SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $2"#,
            "WITH",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 UNION SELECT "api_keys"."id" FROM "api_keys""#,
            "set operation UNION",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 EXCEPT SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $2"#,
            "set operation",
        );
    }

    #[test]
    fn exists_scalar_and_any_subqueries() {
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND EXISTS (SELECT "api_keys"."id" FROM "api_keys" WHERE "api_keys"."tenant_id" = $2)"#,
            "EXISTS subquery",
        );
        refused(
            r#"UPDATE "people" SET "name" = (SELECT "api_keys"."hash" FROM "api_keys" WHERE "api_keys"."tenant_id" <> $1) WHERE "people"."tenant_id" = $2"#,
            "scalar subquery",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."name" = (SELECT "api_keys"."hash" FROM "api_keys" WHERE "api_keys"."tenant_id" = $2)"#,
            "scalar subquery",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."name" = ANY(SELECT "api_keys"."hash" FROM "api_keys" WHERE "api_keys"."tenant_id" = $2)"#,
            "not allowed",
        );
    }

    #[test]
    fn subqueries_need_their_own_predicate_and_no_correlation() {
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."account_id" IN (SELECT "accounts"."id" FROM "accounts" WHERE "accounts"."name" = $2)"#,
            r#"table "accounts" in FROM has no top-level"#,
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."id" NOT IN (SELECT "api_keys"."id" FROM "api_keys")"#,
            r#"table "api_keys" in FROM has no top-level"#,
        );
        // Correlated: the outer table is not in scope inside the subquery.
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."account_id" IN (SELECT "accounts"."id" FROM "accounts" WHERE "accounts"."tenant_id" = "people"."tenant_id")"#,
            "not in scope",
        );
        // A subquery must select one column reference.
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."account_id" IN (SELECT "accounts"."id", "accounts"."name" FROM "accounts" WHERE "accounts"."tenant_id" = $2)"#,
            "exactly one column",
        );
    }

    #[test]
    fn column_refs_must_resolve_at_their_level() {
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "accounts"."id" = $2"#,
            r#""accounts"."id" refers to a table not in scope"#,
        );
        refused(
            r#"SELECT "people"."salary" FROM "people" WHERE "people"."tenant_id" = $1"#,
            r#"unknown column "people"."salary""#,
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "salary" > $2"#,
            r#"unknown column "salary""#,
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "bob" = "people"."name""#,
            r#"unknown column "bob""#,
        );
        refused(
            r#"SELECT "main"."people"."id" FROM "people" WHERE "people"."tenant_id" = $1"#,
            "too many parts",
        );
        refused(
            r#"UPDATE "people" SET "salary" = $1 WHERE "people"."tenant_id" = $2"#,
            "unknown column",
        );
    }

    #[test]
    fn inline_literals() {
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."name" = 'bob'"#,
            "inline literal",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."score" > 3"#,
            "inline literal",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND 1 = 1"#,
            "inline literal",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 LIMIT 10"#,
            "LIMIT",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."id" IN ($2, 'x')"#,
            "not a placeholder",
        );
        refused(
            r#"INSERT INTO "people" ("tenant_id", "id", "name") VALUES ($1, $2, 'x')"#,
            "inline literal",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."name" LIKE $2 ESCAPE 'ab'"#,
            "one-character",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."name" LIKE 'a%'"#,
            "LIKE pattern",
        );
    }

    #[test]
    fn functions_operators_and_casts() {
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND pg_sleep($2) IS NULL"#,
            "function pg_sleep() not allowed",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND random() > $2"#,
            "function random() not allowed",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND LOWER("people"."name") = "lower"($2)"#,
            "not a plain name",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."name" || $2 = $3"#,
            "operator not allowed",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."score" * $2 > $3"#,
            "operator not allowed",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND CAST($2 AS regclass) IS NULL"#,
            "cast not allowed",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND CAST("people"."id" AS text) = $2"#,
            "cast not allowed",
        );
        refused(
            r#"SELECT COUNT(*) OVER () AS n FROM "people" WHERE "people"."tenant_id" = $1"#,
            "window function",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND CASE WHEN TRUE THEN TRUE END"#,
            "CASE",
        );
        refused_in(
            Dialect::Postgres,
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "people"."name" ~ $2"#,
            Scope::Tenant(T),
            "operator not allowed",
        );
        refused_in(
            Dialect::Postgres,
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND $2::regclass IS NULL"#,
            Scope::Tenant(T),
            "cast not allowed",
        );
    }

    #[test]
    fn select_clauses_outside_the_builders() {
        refused(
            r#"SELECT DISTINCT "people"."name" FROM "people" WHERE "people"."tenant_id" = $1"#,
            "DISTINCT",
        );
        refused(
            r#"SELECT COUNT(*) AS n FROM "people" WHERE "people"."tenant_id" = $1 GROUP BY "people"."name""#,
            "GROUP BY",
        );
        refused_in(
            Dialect::Postgres,
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 FOR UPDATE"#,
            Scope::Tenant(T),
            "query clause not allowed",
        );
        // A plain FOR SHARE keeps rows as read (tenancy's `for_share`); its variants that
        // name tables or skip rows do not pass, and it scopes nothing by itself.
        accepted_in(
            Dialect::Postgres,
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 FOR SHARE"#,
            1,
            &[0],
            &["people"],
        );
        for variant in [
            "FOR SHARE OF \"people\"",
            "FOR SHARE NOWAIT",
            "FOR SHARE SKIP LOCKED",
            "FOR NO KEY UPDATE",
            "FOR KEY SHARE",
        ] {
            let sql = format!(
                r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 {variant}"#
            );
            let outcome = Guard::new(16).check(
                Dialect::Postgres,
                &sql,
                &[Value::Uuid(Some(T))],
                Scope::Tenant(T),
                &TestCatalog,
            );
            assert!(outcome.is_err(), "accepted {sql}");
        }
        refused_in(
            Dialect::Postgres,
            r#"SELECT "people"."id" FROM "people" FOR SHARE"#,
            Scope::Tenant(T),
            "tenant",
        );
        refused(
            r#"SELECT LOWER("people"."name") FROM "people" WHERE "people"."tenant_id" = $1"#,
            "select list item not allowed",
        );
        refused(
            r#"SELECT $1 FROM "people" WHERE "people"."tenant_id" = $2"#,
            "select list item not allowed",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 ORDER BY $2"#,
            "not a column reference",
        );
        refused(r#"SELECT $1"#, "without FROM");
    }

    #[test]
    fn update_rules() {
        refused(
            r#"UPDATE "people" SET "tenant_id" = $1 WHERE "people"."tenant_id" = $2"#,
            r#"assigns "tenant_id""#,
        );
        refused(
            r#"UPDATE "people" SET "name" = $1 FROM "accounts" WHERE "people"."tenant_id" = $2"#,
            "UPDATE … FROM",
        );
        refused(
            r#"UPDATE "people" SET "name" = $1 WHERE "people"."tenant_id" = $2 RETURNING COUNT(*)"#,
            "select list item not allowed",
        );
        refused(
            r#"UPDATE "people" AS "p" SET "name" = $1 WHERE "p"."tenant_id" = $2"#,
            "table alias",
        );
    }

    #[test]
    fn insert_rules() {
        refused(
            r#"INSERT INTO "people" ("id", "name") VALUES ($1, $2)"#,
            r#"without "tenant_id" in its column list"#,
        );
        refused(
            r#"INSERT INTO "people" ("tenant_id", "id", "name") SELECT "people"."tenant_id", "people"."id", "people"."name" FROM "people" WHERE "people"."tenant_id" = $1"#,
            "INSERT … SELECT",
        );
        refused(
            r#"INSERT INTO "people" ("tenant_id", "id") VALUES (NULL, $1)"#,
            r#""tenant_id" value `NULL` is not a placeholder"#,
        );
        refused(
            r#"INSERT INTO "people" ("tenant_id", "id") VALUES ($1, $2), (DEFAULT, $3)"#,
            "is not a placeholder",
        );
        refused(
            r#"INSERT INTO "people" ("tenant_id", "id") VALUES ($1, $2, $3)"#,
            "3 values for 2 columns",
        );
        refused(
            r#"INSERT INTO "people" VALUES ($1, $2)"#,
            "without a column list",
        );
        refused(
            r#"INSERT INTO "people" ("tenant_id", "tenant_id") VALUES ($1, $2)"#,
            "listed twice",
        );
        refused_in(
            Dialect::Sqlite,
            r#"INSERT OR REPLACE INTO "people" ("tenant_id", "id") VALUES (?, ?)"#,
            Scope::Tenant(T),
            "INSERT OR",
        );
    }

    #[test]
    fn on_conflict_rules() {
        refused(
            r#"INSERT INTO "accounts" ("tenant_id", "id", "name") VALUES ($1, $2, $3) ON CONFLICT ("id") DO UPDATE SET "name" = "excluded"."name""#,
            r#"ON CONFLICT target without "tenant_id""#,
        );
        refused(
            r#"INSERT INTO "accounts" ("tenant_id", "id", "name") VALUES ($1, $2, $3) ON CONFLICT ("tenant_id", "id") DO UPDATE SET "tenant_id" = "excluded"."tenant_id""#,
            r#"assigns "tenant_id""#,
        );
        refused(
            r#"INSERT INTO "accounts" ("tenant_id", "id", "name") VALUES ($1, $2, $3) ON CONFLICT ("tenant_id", "id") DO UPDATE SET "name" = "excluded"."name" WHERE "accounts"."version" > $4"#,
            "DO UPDATE … WHERE",
        );
        refused(
            r#"INSERT INTO "accounts" ("tenant_id", "id", "name") VALUES ($1, $2, $3) ON CONFLICT ("tenant_id", "id") DO UPDATE SET "name" = (SELECT "api_keys"."hash" FROM "api_keys" WHERE "api_keys"."tenant_id" = $4)"#,
            "scalar subquery",
        );
        refused_in(
            Dialect::Postgres,
            r#"INSERT INTO "accounts" ("tenant_id", "id", "name") VALUES ($1, $2, $3) ON CONFLICT ON CONSTRAINT "accounts_pkey" DO NOTHING"#,
            Scope::Tenant(T),
            "ON CONSTRAINT",
        );
    }

    #[test]
    fn writes_to_the_root_or_global_tables_by_a_tenant_handle() {
        refused(
            r#"UPDATE "tenants" SET "name" = $1 WHERE "tenants"."id" = $2"#,
            r#"may not write the tenant root table "tenants""#,
        );
        refused(
            r#"DELETE FROM "tenants" WHERE "tenants"."id" = $1"#,
            "may not write the tenant root",
        );
        refused(
            r#"INSERT INTO "tenants" ("id", "name") VALUES ($1, $2)"#,
            "may not write the tenant root",
        );
        refused(
            r#"UPDATE "currencies" SET "name" = $1 WHERE "currencies"."code" = $2"#,
            r#"may not write the global table "currencies""#,
        );
        refused(
            r#"INSERT INTO "currencies" ("code", "name") VALUES ($1, $2)"#,
            "may not write the global table",
        );
    }

    #[test]
    fn multiple_statements_comments_and_odd_characters() {
        refused(
            r#"DELETE FROM "people" WHERE "people"."tenant_id" = $1; DELETE FROM "people""#,
            "`;`",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1;"#,
            "`;`",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 -- AND "people"."score" > $2"#,
            "comment",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 /* OR TRUE */"#,
            "comment",
        );
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE /* */ "people"."tenant_id" = $1"#,
            "comment",
        );
        refused(
            "SELECT \"people\".\"id\" FROM \"people\" WHERE \"people\".\"tenant_id\" = $1\0",
            "character",
        );
        refused(
            "SELECT \"people\".\"id\" FROM \"people\" WHERE \"people\".\"tenant_id\" = $1 AND \"people\".\"name\" = $2\u{a0}",
            "character",
        );
    }

    #[test]
    fn identifiers_that_smuggle_sql() {
        // As sea-query writes an Iden `people" WHERE 1=1 --` (the quote doubled).
        refused(
            r#"SELECT "people"" WHERE 1=1 --"."id" FROM "people"" WHERE 1=1 --" WHERE "people"" WHERE 1=1 --"."tenant_id" = $1"#,
            "unknown table",
        );
        // Had it not been escaped.
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE 1=1 --" WHERE "people"."tenant_id" = $1"#,
            "comment",
        );
        // SQLite would read an unknown "x" as a string: it must resolve to a column.
        refused(
            r#"SELECT "people"."id" FROM "people" WHERE "people"."tenant_id" = $1 AND "x" = "x""#,
            r#"unknown column "x""#,
        );
        refused(
            r#"UPDATE "people" SET "name" = $1 WHERE "people"."tenant_id" = $2 OR "people"."id" IS NOT NULL"#,
            "has no top-level",
        );
    }

    #[test]
    fn ddl_pragma_set_and_transaction_control() {
        for sql in [
            r#"DROP TABLE "people""#,
            r#"CREATE TABLE "x" ("id" INTEGER)"#,
            r#"ALTER TABLE "people" ADD COLUMN "x" INTEGER"#,
            "BEGIN",
            "COMMIT",
            "TRUNCATE \"people\"",
        ] {
            refused(sql, "statement not allowed");
        }
        refused_in(
            Dialect::Sqlite,
            r#"PRAGMA table_info("people")"#,
            Scope::Tenant(T),
            "statement not allowed",
        );
        refused_in(
            Dialect::Postgres,
            "SET search_path TO evil",
            Scope::Tenant(T),
            "statement not allowed",
        );
        refused_in(
            Dialect::Postgres,
            r#"COPY "people" TO STDOUT"#,
            Scope::Tenant(T),
            "statement not allowed",
        );
    }

    #[test]
    fn placeholders_in_the_dialects_own_form_only() {
        let pg = r#"DELETE FROM "people" WHERE "people"."tenant_id" = $1"#;
        refused_in(Dialect::Sqlite, pg, Scope::Tenant(T), "placeholder `$1`");
        refused_in(
            Dialect::Sqlite,
            r#"DELETE FROM "people" WHERE "people"."tenant_id" = ?1"#,
            Scope::Tenant(T),
            "placeholder",
        );
        refused_in(
            Dialect::Sqlite,
            r#"DELETE FROM "people" WHERE "people"."tenant_id" = :t"#,
            Scope::Tenant(T),
            "placeholder",
        );
        refused_in(Dialect::Postgres, &to_sqlite(pg), Scope::Tenant(T), "");
        refused_in(
            Dialect::Postgres,
            r#"DELETE FROM "people" WHERE "people"."tenant_id" = $0"#,
            Scope::Tenant(T),
            "placeholder",
        );
    }

    #[test]
    fn postgres_escape_literal_only_in_its_unambiguous_forms() {
        let sql = |escape: &str| {
            format!(
                r#"SELECT "accounts"."id" FROM "accounts" WHERE "accounts"."tenant_id" = $1 AND "accounts"."name" LIKE $2 ESCAPE {escape}"#
            )
        };
        assert!(analyze(Dialect::Postgres, true, &sql("'!'"), &TestCatalog).is_ok());
        refused_in(
            Dialect::Postgres,
            &sql(r"'\'"),
            Scope::Tenant(T),
            "one-character",
        );
        refused_in(
            Dialect::Postgres,
            &sql(r"E'\\\\'"),
            Scope::Tenant(T),
            "one-character",
        );
        refused_in(
            Dialect::Sqlite,
            &to_sqlite(&sql(r"E'\\'")),
            Scope::Tenant(T),
            "",
        );
    }
}
