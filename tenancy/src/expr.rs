//! The typed expression API: the only way to say *which rows* and *what value*.
//!
//! Conditions ([`Cond`]) are built from an entity's own columns through [`ColumnExt`]
//! and combined with [`Cond::and`], [`Cond::or`] and [`Cond::not`]. Values ([`Value`])
//! are plain data (numbers, text, UUIDs, times, JSON), always sent as bound parameters.
//! Nothing here accepts SQL text, a sea-query expression or a statement: a `Cond` is
//! made only by this module, so every condition a scoped query carries is one of the
//! shapes below, and the tenant predicate the builders put in front of it stays at the
//! top level of the `WHERE`.

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use sea_orm::ColumnTrait;
use sea_orm::sea_query::{self, Expr, ExprTrait, Func, LikeExpr};
use uuid::Uuid;

/// A value to compare with or to write: bound as a parameter, never rendered as SQL.
///
/// Built with `From`/`Into` from the column types the schema uses; it has no
/// constructor that takes SQL or a database-specific type.
#[derive(Clone, Debug, PartialEq)]
pub struct Value(pub(crate) sea_query::Value);

macro_rules! value_from {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for Value {
            fn from(value: $ty) -> Self {
                Self(sea_query::Value::from(value))
            }
        }
        impl From<Option<$ty>> for Value {
            fn from(value: Option<$ty>) -> Self {
                Self(sea_query::Value::from(value))
            }
        }
    )*};
}

value_from!(
    bool,
    i16,
    i32,
    i64,
    f64,
    String,
    Uuid,
    DateTime<Utc>,
    serde_json::Value
);

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self(sea_query::Value::from(value))
    }
}

impl Value {
    pub(crate) fn into_inner(self) -> sea_query::Value {
        self.0
    }

    /// The value as a UUID, when it is one (a key value read back from a page).
    pub fn as_uuid(&self) -> Option<Uuid> {
        match &self.0 {
            sea_query::Value::Uuid(Some(id)) => Some(*id),
            _ => None,
        }
    }

    /// The value as a UTC time, when it is one.
    pub fn as_datetime(&self) -> Option<DateTime<Utc>> {
        match &self.0 {
            sea_query::Value::ChronoDateTimeUtc(Some(at)) => Some(*at),
            _ => None,
        }
    }
}

/// Sort direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Order {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

impl Order {
    pub(crate) fn to_sea(self) -> sea_query::Order {
        match self {
            Self::Asc => sea_query::Order::Asc,
            Self::Desc => sea_query::Order::Desc,
        }
    }
}

/// A condition on the rows of one entity, typed by that entity's column type `C`, built
/// only from its columns and [`Value`]s (see [`ColumnExt`]).
#[must_use]
pub struct Cond<C> {
    pub(crate) expr: Expr,
    column: PhantomData<fn() -> C>,
}

impl<C> Clone for Cond<C> {
    fn clone(&self) -> Self {
        Self::new(self.expr.clone())
    }
}

impl<C> std::fmt::Debug for Cond<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Cond").field(&self.expr).finish()
    }
}

impl<C> Cond<C> {
    fn new(expr: Expr) -> Self {
        Self {
            expr,
            column: PhantomData,
        }
    }

    /// Both conditions.
    pub fn and(self, other: Self) -> Self {
        Self::new(self.expr.and(other.expr))
    }

    /// Either condition (nested in parentheses: it never reaches the tenant predicate).
    pub fn or(self, other: Self) -> Self {
        Self::new(self.expr.or(other.expr))
    }
}

impl<C> std::ops::Not for Cond<C> {
    type Output = Self;

    /// The negation of this condition: `!column.is_null()`.
    fn not(self) -> Self {
        Self::new(self.expr.not())
    }
}

/// Escapes `%`, `_` and `\` so `text` matches itself in a `LIKE … ESCAPE '\'`.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Conditions on a column, for every column of every entity: `Column::Email.eq(x)`.
///
/// Implemented for sea-orm's entity columns; the methods take values, never
/// expressions, so a condition can only compare a column of its own entity with data.
pub trait ColumnExt: Copy + Sized {
    /// `column = value` (`column IS NULL` for a null value).
    fn eq(self, value: impl Into<Value>) -> Cond<Self>;
    /// `column <> value` (`column IS NOT NULL` for a null value).
    fn ne(self, value: impl Into<Value>) -> Cond<Self>;
    /// `column < value`.
    fn lt(self, value: impl Into<Value>) -> Cond<Self>;
    /// `column <= value`.
    fn lte(self, value: impl Into<Value>) -> Cond<Self>;
    /// `column > value`.
    fn gt(self, value: impl Into<Value>) -> Cond<Self>;
    /// `column >= value`.
    fn gte(self, value: impl Into<Value>) -> Cond<Self>;
    /// `column IS NULL`.
    fn is_null(self) -> Cond<Self>;
    /// `column IS NOT NULL`.
    fn is_not_null(self) -> Cond<Self>;
    /// `column IN (v1, v2, …)`; an empty list matches nothing.
    fn is_in<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> Cond<Self>;
    /// `column NOT IN (v1, v2, …)`; an empty list matches everything.
    fn is_not_in<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> Cond<Self>;
    /// `column LIKE 'prefix%' ESCAPE '\'`, the prefix matched literally.
    fn starts_with(self, prefix: &str) -> Cond<Self>;
    /// `LOWER(column) LIKE 'prefix%' ESCAPE '\'` with the prefix lower-cased and matched
    /// literally: a case-insensitive prefix search.
    fn starts_with_ci(self, prefix: &str) -> Cond<Self>;
    /// `column LIKE '%text%' ESCAPE '\'`, the text matched literally.
    fn contains(self, text: &str) -> Cond<Self>;
}

impl<C> ColumnExt for C
where
    C: ColumnTrait,
{
    fn eq(self, value: impl Into<Value>) -> Cond<Self> {
        Cond::new(ColumnTrait::eq(&self, value.into().0))
    }
    fn ne(self, value: impl Into<Value>) -> Cond<Self> {
        Cond::new(ColumnTrait::ne(&self, value.into().0))
    }
    fn lt(self, value: impl Into<Value>) -> Cond<Self> {
        Cond::new(ColumnTrait::lt(&self, value.into().0))
    }
    fn lte(self, value: impl Into<Value>) -> Cond<Self> {
        Cond::new(ColumnTrait::lte(&self, value.into().0))
    }
    fn gt(self, value: impl Into<Value>) -> Cond<Self> {
        Cond::new(ColumnTrait::gt(&self, value.into().0))
    }
    fn gte(self, value: impl Into<Value>) -> Cond<Self> {
        Cond::new(ColumnTrait::gte(&self, value.into().0))
    }
    fn is_null(self) -> Cond<Self> {
        Cond::new(ColumnTrait::is_null(&self))
    }
    fn is_not_null(self) -> Cond<Self> {
        Cond::new(ColumnTrait::is_not_null(&self))
    }
    fn is_in<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> Cond<Self> {
        let values: Vec<sea_query::Value> = values.into_iter().map(|v| v.into().0).collect();
        Cond::new(ColumnTrait::is_in(&self, values))
    }
    fn is_not_in<V: Into<Value>>(self, values: impl IntoIterator<Item = V>) -> Cond<Self> {
        let values: Vec<sea_query::Value> = values.into_iter().map(|v| v.into().0).collect();
        Cond::new(ColumnTrait::is_not_in(&self, values))
    }
    fn starts_with(self, prefix: &str) -> Cond<Self> {
        let pattern = LikeExpr::new(format!("{}%", escape_like(prefix))).escape('\\');
        Cond::new(Expr::col(self.as_column_ref()).like(pattern))
    }
    fn starts_with_ci(self, prefix: &str) -> Cond<Self> {
        let pattern =
            LikeExpr::new(format!("{}%", escape_like(&prefix.to_lowercase()))).escape('\\');
        let lower = Expr::expr(Func::lower(Expr::col(self.as_column_ref())));
        Cond::new(lower.like(pattern))
    }
    fn contains(self, text: &str) -> Cond<Self> {
        let pattern = LikeExpr::new(format!("%{}%", escape_like(text))).escape('\\');
        Cond::new(Expr::col(self.as_column_ref()).like(pattern))
    }
}

/// A condition as sea-query's condition (crate-internal).
pub(crate) fn condition<C>(cond: Cond<C>) -> sea_query::Condition {
    sea_query::Condition::all().add(cond.expr)
}

#[cfg(test)]
mod tests {
    use super::escape_like;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(escape_like(r"50%_off\"), r"50\%\_off\\");
        assert_eq!(escape_like("plain"), "plain");
    }
}
