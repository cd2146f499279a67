//! `/v1/api_keys`: credentials for integrations. The secret is returned once, at
//! creation, and never stored (only its keyed hash is).

use chrono::DateTime;
use domain::identity;
use poem::Request;
use poem::http::StatusCode;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Tag, list_envelope};
use crate::auth::{BearerAuth, Scope, api_key};
use crate::context::{Call, Operation};
use crate::http::JsonBody;
use crate::problem::{
    ApiError, CreateErrors, DeleteErrors, FieldProblem, ListErrors, Problem, kind,
};
use crate::timestamp::Timestamp;

/// An API key, without its secret.
#[derive(Object, Serialize, Debug, Clone, PartialEq)]
#[oai(example)]
pub struct ApiKey {
    /// UUIDv7.
    pub id: Uuid,
    /// What the key is for.
    pub name: String,
    /// The key's public start, up to its secret, to recognise it: `tnt_`, the tenant's
    /// id (22 characters) and 8 random characters (`tnt_` and 8 characters for keys made
    /// before keys named their tenant).
    pub prefix: String,
    /// The scopes it grants.
    pub scopes: Vec<String>,
    /// The user who created it.
    #[oai(nullable)]
    pub created_by: Option<Uuid>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last used (to the minute).
    #[oai(nullable)]
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked; a revoked key authenticates nothing.
    #[oai(nullable)]
    pub revoked_at: Option<Timestamp>,
}

impl Example for ApiKey {
    fn example() -> Self {
        Self {
            id: Uuid::parse_str("0194a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a80").unwrap_or_default(),
            name: "CRM sync".to_owned(),
            prefix: "tnt_2zRz3aTbxUWY4k7sPpGk1E_Ab3dEf7h".to_owned(),
            scopes: vec!["people:read".to_owned(), "people:write".to_owned()],
            created_by: None,
            created_at: Timestamp::from(
                DateTime::parse_from_rfc3339("2026-01-15T09:30:00Z")
                    .map(|t| t.to_utc())
                    .unwrap_or_default(),
            ),
            last_used_at: None,
            revoked_at: None,
        }
    }
}

impl From<identity::ApiKey> for ApiKey {
    fn from(k: identity::ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            created_by: k.created_by,
            created_at: Timestamp::from(k.created_at),
            last_used_at: k.last_used_at.map(Timestamp),
            revoked_at: k.revoked_at.map(Timestamp),
        }
    }
}

/// A new API key with its secret: shown this once.
#[derive(Object, Debug, Clone)]
pub struct ApiKeyCreated {
    /// The key.
    pub api_key: ApiKey,
    /// The whole secret key, to send as `Authorization: Bearer <secret>`. It cannot be
    /// retrieved again: store it now.
    pub secret: String,
}

/// The body of `create_api_key`.
#[derive(Object, Deserialize, Debug, Clone)]
#[oai(example, deny_unknown_fields)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    /// What the key is for: 1 to 200 characters once surrounding whitespace is
    /// trimmed, no control characters.
    pub name: String,
    /// The scopes to grant (at most 64): a subset of your own.
    pub scopes: Vec<String>,
}

impl Example for ApiKeyCreate {
    fn example() -> Self {
        Self {
            name: "CRM sync".to_owned(),
            scopes: vec!["people:read".to_owned(), "people:write".to_owned()],
        }
    }
}

list_envelope!(
    /// Every API key of the tenant (a handful: one page), revoked ones included.
    ApiKeyList,
    ApiKey
);

/// The response of `create_api_key`.
#[derive(ApiResponse)]
pub enum KeyCreated {
    /// Created; `secret` is shown only now.
    #[oai(status = 201)]
    Created(Json<ApiKeyCreated>),
}

/// The response of `revoke_api_key`.
#[derive(ApiResponse)]
pub enum KeyRevoked {
    /// The key, now revoked (revoking twice changes nothing).
    #[oai(status = 200)]
    Ok(Json<ApiKey>),
}

/// The API-key operations.
pub struct ApiKeysApi;

/// Attempts at a fresh prefix when a generated one is taken (62^8 prefixes: a clash is
/// astronomically rare, but the unique index makes it safe to simply retry).
const PREFIX_ATTEMPTS: usize = 3;

#[OpenApi(prefix_path = "/v1", tag = "Tag::ApiKeys")]
impl ApiKeysApi {
    /// Price of `create_api_key` (see [`crate::limits`]): a write.
    pub const CREATE_API_KEY: Operation = Operation::write("create_api_key", Scope::ApiKeysWrite);

    /// Create an API key
    ///
    /// Returns the secret once. A key can grant only scopes its creator holds. Not
    /// idempotent by key: a retried request makes a second key (revoke the extra one),
    /// because storing the response for replay would store the secret.
    #[oai(path = "/api_keys", method = "post", operation_id = "create_api_key")]
    async fn create_api_key(
        &self,
        #[oai(scope = "Scope::ApiKeysWrite")] auth: BearerAuth,
        req: &Request,
        body: JsonBody<ApiKeyCreate>,
    ) -> Result<KeyCreated, ApiError<CreateErrors>> {
        let Call {
            principal,
            db,
            state,
            ..
        } = Self::CREATE_API_KEY.begin(req, &auth)?;
        let input = body.value;
        let mut errors = Vec::new();
        for (i, name) in input.scopes.iter().enumerate() {
            match Scope::parse(name) {
                None => errors.push(FieldProblem::new(
                    format!("scopes[{i}]"),
                    "unknown_scope",
                    format!("`{name}` is not a scope"),
                )),
                Some(scope) if !principal.has(scope) => errors.push(FieldProblem::new(
                    format!("scopes[{i}]"),
                    "not_held",
                    format!("you cannot grant `{name}`: your credential does not hold it"),
                )),
                Some(_) => {}
            }
        }
        if !errors.is_empty() {
            return Err(Problem::validation(errors).into());
        }
        for _ in 0..PREFIX_ATTEMPTS {
            let key = api_key::generate(state.auth.pepper(), principal.ctx().tenant().as_uuid());
            let created = identity::create_api_key(
                &db,
                identity::ApiKeyCreate {
                    name: input.name.clone(),
                    prefix: key.prefix.clone(),
                    secret_hash: key.secret_hash.clone(),
                    scopes: input.scopes.clone(),
                    created_by: principal.user_id(),
                },
            )
            .await;
            match created {
                Ok(api_key) => {
                    return Ok(KeyCreated::Created(Json(ApiKeyCreated {
                        api_key: api_key.into(),
                        secret: key.token,
                    })));
                }
                Err(domain::Error::Conflict {
                    field: "prefix", ..
                }) => {}
                Err(other) => return Err(other.into()),
            }
        }
        Err(Problem::new(
            StatusCode::CONFLICT,
            kind::CONFLICT,
            "could not allocate a unique key prefix; retry",
        )
        .into())
    }

    /// Price of `list_api_keys` (see [`crate::limits`]): a read (the list is short and
    /// unpaginated).
    pub const LIST_API_KEYS: Operation = Operation::read("list_api_keys", Scope::ApiKeysRead);

    /// List API keys
    ///
    /// Every key of your tenant, revoked ones included, oldest first. Secrets are never
    /// returned.
    #[oai(path = "/api_keys", method = "get", operation_id = "list_api_keys")]
    async fn list_api_keys(
        &self,
        #[oai(scope = "Scope::ApiKeysRead")] auth: BearerAuth,
        req: &Request,
    ) -> Result<super::Listed<ApiKeyList>, ApiError<ListErrors>> {
        let Call { db, .. } = Self::LIST_API_KEYS.begin(req, &auth)?;
        let keys = identity::list_api_keys(&db).await?;
        let data = keys.into_iter().map(ApiKey::from).collect();
        Ok(ApiKeyList::from_listing(super::Listing {
            data,
            next_cursor: None,
            has_more: false,
            link: None,
        }))
    }

    /// Price of `revoke_api_key` (see [`crate::limits`]): a write.
    pub const REVOKE_API_KEY: Operation = Operation::write("revoke_api_key", Scope::ApiKeysWrite);

    /// Revoke an API key
    ///
    /// The key stops authenticating at once on this server, and within the key cache's
    /// lifetime (30 seconds by default) on every other.
    #[oai(
        path = "/api_keys/:id",
        method = "delete",
        operation_id = "revoke_api_key"
    )]
    async fn revoke_api_key(
        &self,
        #[oai(scope = "Scope::ApiKeysWrite")] auth: BearerAuth,
        req: &Request,
        /// The key's id.
        id: Path<Uuid>,
    ) -> Result<KeyRevoked, ApiError<DeleteErrors>> {
        let Call { db, state, .. } = Self::REVOKE_API_KEY.begin(req, &auth)?;
        let key = identity::revoke_api_key(&db, id.0).await?;
        state.auth.forget_key(key.id);
        Ok(KeyRevoked::Ok(Json(key.into())))
    }
}
