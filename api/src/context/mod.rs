//! One operation descriptor and one prologue.
//!
//! Every operation is described once, by an associated const right above its handler:
//! [`Operation`] — its id, the scope it requires and its price. The descriptors are listed
//! in [`crate::v1::OPERATIONS`], which the front door prices requests from
//! ([`crate::front`]) and the spec publishes.
//!
//! Every handler starts with [`Operation::begin`]: it checks the operation's scope
//! against the principal the front door verified, takes over the charge the front door
//! made, and opens the principal's tenant handle. It is the only way a handler gets a
//! [`TenantDb`] (the pool is behind [`tenants::Tenants`], whose `open` only this module
//! can call) and the only place a handler reaches the server's state.

pub mod tenants;

use std::sync::Arc;

use poem::Request;
use serde_json::{Value, json};
use tenancy::TenantDb;

use crate::auth::{BearerAuth, Principal, Scope};
use crate::limits::{Charge, Cost};
use crate::problem::Problem;
use crate::state::AppState;

/// An operation: its id, scope and price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The operationId.
    pub id: &'static str,
    /// The scope it requires.
    pub scope: Scope,
    /// Its price.
    pub cost: Cost,
}

/// What the prologue gives a handler.
#[derive(Debug)]
pub struct Call<'r> {
    /// The verified caller, holding the operation's scope.
    pub principal: &'r Principal,
    /// The caller's tenant handle.
    pub db: TenantDb,
    /// What the request was charged; refund it when the answer turned out free.
    pub charge: Charge,
    /// The server's state (cursors, settings, the authenticator).
    pub state: &'r AppState,
}

impl Operation {
    /// A read of one resource: [`crate::limits::READ`].
    pub const fn read(id: &'static str, scope: Scope) -> Self {
        Self::new(id, scope, Cost::Fixed(crate::limits::READ))
    }

    /// A read of one resource that answers `If-None-Match`: 1, and 0 on a 304.
    pub const fn conditional_read(id: &'static str, scope: Scope) -> Self {
        Self::new(id, scope, Cost::ConditionalRead)
    }

    /// A write: [`crate::limits::WRITE`].
    pub const fn write(id: &'static str, scope: Scope) -> Self {
        Self::new(id, scope, Cost::Fixed(crate::limits::WRITE))
    }

    /// A cursor-only list page.
    pub const fn page(id: &'static str, scope: Scope) -> Self {
        Self::new(id, scope, Cost::Page)
    }

    /// A list page with offset pages too.
    pub const fn offset_page(id: &'static str, scope: Scope) -> Self {
        Self::new(id, scope, Cost::OffsetPage)
    }

    const fn new(id: &'static str, scope: Scope, cost: Cost) -> Self {
        Self { id, scope, cost }
    }

    /// The units a call costs with `limit` and offset `page` (see [`Cost::units`]).
    pub fn units(&self, limit: Option<u64>, page: Option<u64>) -> u64 {
        self.cost.units(limit, page)
    }

    /// The units of a call with the query string `query` (see [`Cost::price`]).
    pub fn price(&self, query: &str) -> u64 {
        self.cost.price(query)
    }

    /// The prologue (see the module docs): the principal with this operation's scope, its
    /// tenant handle, and the charge the front door made.
    ///
    /// # Errors
    /// 403 `insufficient-scope` when the credential lacks the scope; 500 when the server
    /// state is missing (a wiring bug the tests catch).
    pub fn begin<'r>(&self, req: &'r Request, auth: &'r BearerAuth) -> Result<Call<'r>, Problem> {
        let principal = auth.require(self.scope)?;
        let Some(state) = req.data::<Arc<AppState>>() else {
            tracing::error!(
                operation = self.id,
                "the server state is not attached to the request"
            );
            return Err(Problem::internal());
        };
        Ok(Call {
            principal,
            db: state.tenants.open(principal),
            charge: Charge::take(req, self.id),
            state,
        })
    }

    /// What the spec publishes: `x-rate-limit-cost` (the cost with default parameters)
    /// and, when it varies, `x-rate-limit-cost-rule`.
    pub fn spec_extensions(&self) -> Vec<(&'static str, Value)> {
        let mut out = vec![("x-rate-limit-cost", json!(self.units(None, None)))];
        if let Some(rule) = self.cost.rule() {
            out.push(("x-rate-limit-cost-rule", json!(rule)));
        }
        out
    }
}
