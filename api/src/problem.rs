//! RFC 9457 problem details: the one shape of every error response.
//!
//! - [`Problem`] is the body (`application/problem+json`), with a stable `type` URI per
//!   kind of error ([`kind`]).
//! - [`ApiError`] is what operations return on failure; its type parameter declares
//!   which statuses the operation documents in the spec.
//! - [`render`] turns *any* `poem::Error` (ours, poem-openapi's parse and auth errors,
//!   unknown routes, 405, 413, timeouts) into a problem response carrying the request id
//!   and path. It runs in the middleware, so no error escapes as plain text — except
//!   those hyper answers itself before a request exists (see
//!   [`crate::middleware::RequestHead`]).
//! - `From<domain::Error>` maps domain failures once, here at the edge.

use std::fmt;
use std::marker::PhantomData;

use poem::http::{HeaderValue, StatusCode, header};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object};

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Stable problem `type` URIs, one per kind of error. Clients switch on these, so they
/// never change once published.
pub mod kind {
    /// Prefix of every problem type.
    pub const BASE: &str = "https://tenantry.dev/problems/";
    /// 400: a path, query or header parameter is invalid.
    pub const INVALID_PARAMETER: &str = "https://tenantry.dev/problems/invalid-parameter";
    /// 400: the body is not well-formed JSON.
    pub const MALFORMED_JSON: &str = "https://tenantry.dev/problems/malformed-json";
    /// 400: the pagination cursor is invalid, tampered with, or made for other filters.
    pub const INVALID_CURSOR: &str = "https://tenantry.dev/problems/invalid-cursor";
    /// 401: no credential, or one that does not verify.
    pub const UNAUTHENTICATED: &str = "https://tenantry.dev/problems/unauthenticated";
    /// 403: the credential lacks the scope the operation requires.
    pub const INSUFFICIENT_SCOPE: &str = "https://tenantry.dev/problems/insufficient-scope";
    /// 403: a browser origin that is not allowed (CORS).
    pub const ORIGIN_NOT_ALLOWED: &str = "https://tenantry.dev/problems/origin-not-allowed";
    /// 404: no such resource in your tenant, or no such route.
    pub const NOT_FOUND: &str = "https://tenantry.dev/problems/not-found";
    /// 405: the route exists, the method does not.
    pub const METHOD_NOT_ALLOWED: &str = "https://tenantry.dev/problems/method-not-allowed";
    /// 409: the write would duplicate a unique value.
    pub const CONFLICT: &str = "https://tenantry.dev/problems/conflict";
    /// 412: `If-Match` names a version that is no longer current.
    pub const PRECONDITION_FAILED: &str = "https://tenantry.dev/problems/precondition-failed";
    /// 413: the body is larger than the limit.
    pub const PAYLOAD_TOO_LARGE: &str = "https://tenantry.dev/problems/payload-too-large";
    /// 507: the server's storage is nearly full; writes are paused.
    pub const INSUFFICIENT_STORAGE: &str = "https://tenantry.dev/problems/insufficient-storage";
    /// 408: the request body came too slowly.
    pub const BODY_TIMEOUT: &str = "https://tenantry.dev/problems/body-timeout";
    /// 414: the request target (path and query) is longer than the server accepts.
    pub const URI_TOO_LONG: &str = "https://tenantry.dev/problems/uri-too-long";
    /// 431: the request's header fields together are larger than the server accepts.
    pub const HEADERS_TOO_LARGE: &str = "https://tenantry.dev/problems/headers-too-large";
    /// 415: the body is not `application/json`.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "https://tenantry.dev/problems/unsupported-media-type";
    /// 422: the body is well-formed but invalid; `errors` lists every failing field.
    pub const VALIDATION_FAILED: &str = "https://tenantry.dev/problems/validation-failed";
    /// 422: an `Idempotency-Key` was reused with a different request.
    pub const IDEMPOTENCY_KEY_REUSED: &str = "https://tenantry.dev/problems/idempotency-key-reused";
    /// 500: a fault on our side; the request id finds it in the logs.
    pub const INTERNAL: &str = "https://tenantry.dev/problems/internal";
    /// 503: overloaded or timed out; retry after `Retry-After` seconds.
    pub const UNAVAILABLE: &str = "https://tenantry.dev/problems/unavailable";
    /// 429: a rate-limit policy has no budget left for this request's cost;
    /// `violated-policies` names it, `Retry-After` says when to try again. The type is the
    /// one registered by draft-ietf-httpapi-ratelimit-headers, so generic clients know it.
    pub const QUOTA_EXCEEDED: &str = ratelimit::headers::QUOTA_EXCEEDED_TYPE;
}

/// An RFC 9457 problem: what went wrong, in a shape every error shares.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(example)]
pub struct Problem {
    /// A URI identifying the kind of problem; stable, switch on it.
    #[oai(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem; the same for every occurrence.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    #[oai(nullable)]
    pub detail: Option<String>,
    /// The request path this occurrence happened on.
    #[oai(nullable)]
    pub instance: Option<String>,
    /// The request id (`X-Request-Id`): quote it when asking for support.
    #[oai(nullable)]
    pub request_id: Option<String>,
    /// Every invalid input field (validation problems); empty otherwise.
    pub errors: Vec<FieldProblem>,
    /// The rate-limit policies whose quota this request exceeded (`tenant`, `credential`
    /// or `ip`; 429 only); empty otherwise.
    #[oai(rename = "violated-policies")]
    pub violated_policies: Vec<String>,
}

/// One invalid input field.
#[derive(Object, Debug, Clone, PartialEq)]
pub struct FieldProblem {
    /// Path of the field in the input: `email`, `custom_fields`, `limit`, `scopes[1]`.
    pub field: String,
    /// Stable machine-readable reason: `required`, `too_long`, `invalid_email`, …
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl FieldProblem {
    /// A failing `field` with `code` and `message`.
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

impl Problem {
    /// A problem of kind `kind` with `status`; the title is the kind's.
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            title: title_of(kind, status).to_owned(),
            status: status.as_u16(),
            detail: Some(detail.into()),
            instance: None,
            request_id: None,
            errors: Vec::new(),
            violated_policies: Vec::new(),
        }
    }

    /// Adds field errors.
    #[must_use]
    pub fn with_errors(mut self, errors: Vec<FieldProblem>) -> Self {
        self.errors = errors;
        self
    }

    /// 400 invalid parameter `field`.
    pub fn invalid_parameter(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            kind::INVALID_PARAMETER,
            format!("invalid parameter `{field}`: {message}"),
        )
        .with_errors(vec![FieldProblem::new(field, "invalid", message)])
    }

    /// 404 for a resource that is not there (or is another tenant's).
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            kind::NOT_FOUND,
            format!("{what} not found"),
        )
    }

    /// 401 with a reason.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, kind::UNAUTHENTICATED, detail)
    }

    /// 422 with the failing fields.
    pub fn validation(errors: Vec<FieldProblem>) -> Self {
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        let detail = format!("invalid input: {}", fields.join(", "));
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            kind::VALIDATION_FAILED,
            detail,
        )
        .with_errors(errors)
    }

    /// 429 for a refused rate-limit `decision`: names the violated policy and when to retry.
    pub fn quota_exceeded(decision: &ratelimit::Decision) -> Self {
        let policy = decision.violated();
        let detail = match (policy, decision.retry_after_header()) {
            (Some(p), Some(retry)) => format!(
                "the `{}` rate limit allows {} cost units per {} s and has too few left for this \
                 request; retry in {retry} s",
                p.name(),
                p.quota(),
                p.window().as_secs(),
            ),
            _ => "rate limit exceeded".to_owned(),
        };
        let mut problem = Self::new(StatusCode::TOO_MANY_REQUESTS, kind::QUOTA_EXCEEDED, detail);
        problem.violated_policies = policy.map(|p| p.name().to_owned()).into_iter().collect();
        problem
    }

    /// 500. The cause is logged by the caller, never sent.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            kind::INTERNAL,
            "an internal error occurred; quote the request id when reporting it",
        )
    }

    /// The status as a [`StatusCode`].
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl poem_openapi::types::Example for Problem {
    fn example() -> Self {
        Self {
            kind: kind::VALIDATION_FAILED.to_owned(),
            title: "Validation failed".to_owned(),
            status: 422,
            detail: Some("invalid input: email".to_owned()),
            instance: Some("/v1/people".to_owned()),
            request_id: Some("0192f4a4-6c1e-7d3a-9b1e-3f2a1c9d8e7f".to_owned()),
            errors: vec![FieldProblem::new(
                "email",
                "invalid_email",
                "must be an email address like name@example.com",
            )],
            violated_policies: Vec::new(),
        }
    }
}

impl Problem {
    /// The response for this problem, with the request context filled in.
    pub fn into_response_for(mut self, ctx: &ProblemContext) -> Response {
        if self.instance.is_none() {
            self.instance = Some(ctx.path.clone());
        }
        if self.request_id.is_none() {
            self.request_id = ctx.request_id.clone();
        }
        self.into_response()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = self.to_json().map(|v| v.to_string()).unwrap_or_default();
        let mut resp = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, PROBLEM_JSON)
            .body(body);
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tenantry\""),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::INSUFFICIENT_STORAGE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

fn title_of(kind: &str, status: StatusCode) -> &'static str {
    match kind {
        kind::INVALID_PARAMETER => "Invalid parameter",
        kind::MALFORMED_JSON => "Malformed JSON",
        kind::INVALID_CURSOR => "Invalid cursor",
        kind::UNAUTHENTICATED => "Unauthenticated",
        kind::INSUFFICIENT_SCOPE => "Insufficient scope",
        kind::ORIGIN_NOT_ALLOWED => "Origin not allowed",
        kind::NOT_FOUND => "Not found",
        kind::METHOD_NOT_ALLOWED => "Method not allowed",
        kind::CONFLICT => "Conflict",
        kind::PRECONDITION_FAILED => "Precondition failed",
        kind::PAYLOAD_TOO_LARGE => "Payload too large",
        kind::BODY_TIMEOUT => "Request body too slow",
        kind::INSUFFICIENT_STORAGE => "Insufficient storage",
        kind::URI_TOO_LONG => "URI too long",
        kind::HEADERS_TOO_LARGE => "Request headers too large",
        kind::UNSUPPORTED_MEDIA_TYPE => "Unsupported media type",
        kind::VALIDATION_FAILED => "Validation failed",
        kind::IDEMPOTENCY_KEY_REUSED => "Idempotency key reused",
        kind::INTERNAL => "Internal error",
        kind::UNAVAILABLE => "Service unavailable",
        kind::QUOTA_EXCEEDED => "Quota exceeded",
        _ => status.canonical_reason().unwrap_or("Error"),
    }
}

/// What a problem needs from the request it answers.
#[derive(Debug, Clone, Default)]
pub struct ProblemContext {
    /// The request path (`instance`).
    pub path: String,
    /// The request id.
    pub request_id: Option<String>,
}

/// A [`Problem`] travelling as a `poem::Error` until the middleware renders it with
/// the request context.
#[derive(Debug, Clone)]
pub struct ProblemError(pub Box<Problem>);

impl fmt::Display for ProblemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0.title, self.0.status)
    }
}

impl std::error::Error for ProblemError {}

impl poem::error::ResponseError for ProblemError {
    fn status(&self) -> StatusCode {
        self.0.status_code()
    }

    fn as_response(&self) -> Response {
        (*self.0).clone().into_response()
    }
}

impl From<Problem> for poem::Error {
    fn from(problem: Problem) -> Self {
        ProblemError(Box::new(problem)).into()
    }
}

/// The statuses an operation documents for its errors.
pub trait ErrorSet: Send + Sync + 'static {
    /// `(status, description)` of each documented error response.
    const STATUSES: &'static [(u16, &'static str)];
}

const BAD_REQUEST: (u16, &str) = (400, "Invalid parameter, malformed JSON or invalid cursor.");
const UNAUTHORIZED: (u16, &str) = (401, "Missing or invalid credential.");
const FORBIDDEN: (u16, &str) = (403, "The credential lacks the required scope.");
const NOT_FOUND: (u16, &str) = (404, "No such resource in your tenant.");
const CONFLICT: (u16, &str) = (409, "A unique value is taken.");
const PRECONDITION: (u16, &str) = (412, "If-Match does not match the current ETag.");
const BODY_TOO_SLOW: (u16, &str) = (
    408,
    "The body came too slowly (below the minimum rate, or past the body deadline).",
);
const TOO_LARGE: (u16, &str) = (413, "The body is larger than the limit.");
const MEDIA_TYPE: (u16, &str) = (415, "The body is not application/json.");
const UNPROCESSABLE: (u16, &str) = (
    422,
    "Validation failed (a field, a query parameter, or one this operation does not have), \
     or an Idempotency-Key was reused with another body.",
);
const TOO_MANY: (u16, &str) = (
    429,
    "A rate limit has too little budget left for this request's cost: wait Retry-After seconds.",
);
const INTERNAL: (u16, &str) = (500, "Internal error; quote the request id.");
const UNAVAILABLE: (u16, &str) = (
    503,
    "Overloaded, timed out, or the database is unavailable; retry after Retry-After seconds.",
);
const STORAGE: (u16, &str) = (
    507,
    "The server's storage is nearly full and writes are paused; retry after Retry-After seconds.",
);

/// Errors of a read by id.
#[derive(Debug)]
pub struct ReadErrors;
impl ErrorSet for ReadErrors {
    const STATUSES: &'static [(u16, &'static str)] = &[
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        UNPROCESSABLE,
        TOO_MANY,
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// Errors of a list.
#[derive(Debug)]
pub struct ListErrors;
impl ErrorSet for ListErrors {
    const STATUSES: &'static [(u16, &'static str)] = &[
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        UNPROCESSABLE,
        TOO_MANY,
        INTERNAL,
        UNAVAILABLE,
    ];
}

/// Errors of a create.
#[derive(Debug)]
pub struct CreateErrors;
impl ErrorSet for CreateErrors {
    const STATUSES: &'static [(u16, &'static str)] = &[
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        BODY_TOO_SLOW,
        CONFLICT,
        TOO_LARGE,
        MEDIA_TYPE,
        UNPROCESSABLE,
        TOO_MANY,
        INTERNAL,
        UNAVAILABLE,
        STORAGE,
    ];
}

/// Errors of an update.
#[derive(Debug)]
pub struct UpdateErrors;
impl ErrorSet for UpdateErrors {
    const STATUSES: &'static [(u16, &'static str)] = &[
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        BODY_TOO_SLOW,
        CONFLICT,
        PRECONDITION,
        TOO_LARGE,
        MEDIA_TYPE,
        UNPROCESSABLE,
        TOO_MANY,
        INTERNAL,
        UNAVAILABLE,
        STORAGE,
    ];
}

/// Errors of a delete.
#[derive(Debug)]
pub struct DeleteErrors;
impl ErrorSet for DeleteErrors {
    const STATUSES: &'static [(u16, &'static str)] = &[
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        PRECONDITION,
        UNPROCESSABLE,
        TOO_MANY,
        INTERNAL,
        UNAVAILABLE,
        STORAGE,
    ];
}

/// The failure of an operation: a [`Problem`], documented in the spec with the statuses
/// of `S`.
pub struct ApiError<S: ErrorSet = ReadErrors> {
    problem: Box<Problem>,
    _set: PhantomData<fn() -> S>,
}

impl<S: ErrorSet> ApiError<S> {
    /// The problem inside.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl<S: ErrorSet> fmt::Debug for ApiError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ApiError").field(&self.problem).finish()
    }
}

impl<S: ErrorSet> From<Problem> for ApiError<S> {
    fn from(problem: Problem) -> Self {
        Self {
            problem: Box::new(problem),
            _set: PhantomData,
        }
    }
}

impl<S: ErrorSet> From<domain::Error> for ApiError<S> {
    fn from(error: domain::Error) -> Self {
        Problem::from(error).into()
    }
}

impl<S: ErrorSet> From<ApiError<S>> for poem::Error {
    fn from(error: ApiError<S>) -> Self {
        ProblemError(error.problem).into()
    }
}

impl<S: ErrorSet> ApiResponse for ApiError<S> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: S::STATUSES
                .iter()
                .map(|&(status, description)| MetaResponse {
                    description,
                    status: Some(status),
                    status_range: None,
                    content: vec![MetaMediaType {
                        content_type: PROBLEM_JSON,
                        schema: Problem::schema_ref(),
                    }],
                    headers: vec![],
                })
                .collect(),
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

impl From<domain::Error> for Problem {
    fn from(error: domain::Error) -> Self {
        use domain::Error as E;
        match error {
            E::NotFound {
                resource,
                field: None,
            } => Problem::not_found(resource.as_str()),
            E::NotFound {
                resource,
                field: Some(field),
            } => Problem::validation(vec![FieldProblem::new(
                field,
                "not_found",
                format!("no such {resource} in your tenant"),
            )]),
            E::VersionMismatch {
                resource,
                expected,
                current,
            } => Problem::new(
                StatusCode::PRECONDITION_FAILED,
                kind::PRECONDITION_FAILED,
                format!(
                    "{resource} is at version {current}, If-Match named version {expected}: fetch it again"
                ),
            ),
            E::Conflict { resource, field } => Problem::new(
                StatusCode::CONFLICT,
                kind::CONFLICT,
                format!("a {resource} with this {field} already exists"),
            )
            .with_errors(vec![FieldProblem::new(
                field,
                "taken",
                format!("this {field} is already taken"),
            )]),
            E::Validation(errors) => Problem::validation(
                errors
                    .into_iter()
                    .map(|e| FieldProblem::new(e.field, e.code, e.message))
                    .collect(),
            ),
            E::IdempotencyKeyReused => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                kind::IDEMPOTENCY_KEY_REUSED,
                "this Idempotency-Key was already used with a different request; use a new key",
            ),
            unavailable @ (E::Unavailable(_) | E::Contention { .. }) => {
                log_internal(&unavailable);
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    kind::UNAVAILABLE,
                    "the database is unavailable or saturated; retry shortly",
                )
            }
            other => {
                log_internal(&other);
                Problem::internal()
            }
        }
    }
}

/// Logs an internal error with its whole source chain, once.
pub fn log_internal(error: &(dyn std::error::Error + 'static)) {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::error!(error = %chain, "internal error");
}

/// Renders any error that reached the middleware as a problem response.
pub fn render(error: poem::Error, ctx: &ProblemContext) -> Response {
    problem_of(&error).into_response_for(ctx)
}

/// The problem for any `poem::Error`.
pub fn problem_of(error: &poem::Error) -> Problem {
    use poem::error::{CorsError, MethodNotAllowedError, NotFoundError, ReadBodyError};
    use poem_openapi::error::{
        AuthorizationError, ContentTypeError, ParseParamError, ParsePathError,
        ParseRequestPayloadError,
    };

    if let Some(problem) = error.downcast_ref::<ProblemError>() {
        return (*problem.0).clone();
    }
    if error.is::<NotFoundError>() {
        return Problem::new(StatusCode::NOT_FOUND, kind::NOT_FOUND, "no such route");
    }
    if error.is::<MethodNotAllowedError>() {
        return Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            kind::METHOD_NOT_ALLOWED,
            "this route does not support that method",
        );
    }
    if error.is::<AuthorizationError>() {
        return Problem::unauthenticated("send `Authorization: Bearer <JWT or API key>`");
    }
    if let Some(e) = error.downcast_ref::<ParseParamError>() {
        return Problem::invalid_parameter(e.name, e.reason.clone());
    }
    if error.is::<ParsePathError>() {
        // poem-openapi names path parameters `param0`; every path here has one id.
        return Problem::invalid_parameter("id", "must be a UUID");
    }
    if let Some(e) = error.downcast_ref::<ParseRequestPayloadError>() {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            kind::MALFORMED_JSON,
            e.reason.clone(),
        );
    }
    if let Some(e) = error.downcast_ref::<ContentTypeError>() {
        return Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            kind::UNSUPPORTED_MEDIA_TYPE,
            format!("{e}; send `Content-Type: application/json` (optionally `; charset=utf-8`)"),
        );
    }
    if let Some(e) = error.downcast_ref::<ReadBodyError>() {
        return match e {
            ReadBodyError::PayloadTooLarge => too_large(),
            ReadBodyError::Utf8(_) | ReadBodyError::Io(_) => Problem::new(
                StatusCode::BAD_REQUEST,
                kind::MALFORMED_JSON,
                format!("could not read the body: {e}"),
            ),
            ReadBodyError::BodyHasBeenTaken => {
                log_internal(e);
                Problem::internal()
            }
        };
    }
    if error.is::<CorsError>() {
        return Problem::new(
            StatusCode::FORBIDDEN,
            kind::ORIGIN_NOT_ALLOWED,
            error.to_string(),
        );
    }
    let status = error.status();
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        StatusCode::UNAUTHORIZED => Problem::unauthenticated(error.to_string()),
        StatusCode::NOT_FOUND => Problem::new(status, kind::NOT_FOUND, error.to_string()),
        s if s.is_server_error() => {
            log_internal(error);
            Problem::internal()
        }
        s => Problem::new(
            s,
            &format!("{}http-{}", kind::BASE, s.as_u16()),
            error.to_string(),
        ),
    }
}

/// 413.
pub fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        kind::PAYLOAD_TOO_LARGE,
        "the request body is larger than the limit",
    )
}

#[cfg(test)]
mod tests {
    use domain::{Error as DomainError, FieldError, Resource};

    use super::*;

    #[test]
    fn another_tenants_row_and_a_missing_row_map_to_the_same_404() {
        let p = Problem::from(DomainError::NotFound {
            resource: Resource::Account,
            field: None,
        });
        assert_eq!((p.status, p.kind.as_str()), (404, kind::NOT_FOUND));
    }

    #[test]
    fn a_missing_reference_in_the_body_is_a_validation_error_on_that_field() {
        let p = Problem::from(DomainError::NotFound {
            resource: Resource::Account,
            field: Some("account_id"),
        });
        assert_eq!(p.status, 422);
        assert_eq!(p.errors[0].field, "account_id");
    }

    #[test]
    fn validation_errors_keep_every_field_path() {
        let p = Problem::from(DomainError::Validation(vec![
            FieldError::new("name", "required", "must not be empty"),
            FieldError::new("email", "invalid_email", "bad"),
        ]));
        assert_eq!(p.kind, kind::VALIDATION_FAILED);
        let fields: Vec<_> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "email"]);
    }

    #[test]
    fn a_stale_version_is_412_and_a_duplicate_is_409() {
        let stale = Problem::from(DomainError::VersionMismatch {
            resource: Resource::Person,
            expected: 1,
            current: 2,
        });
        assert_eq!(stale.status, 412);
        let dup = Problem::from(DomainError::Conflict {
            resource: Resource::Person,
            field: "email",
        });
        assert_eq!((dup.status, dup.errors[0].field.as_str()), (409, "email"));
    }

    #[test]
    fn poem_errors_become_problems_with_the_request_context() {
        let ctx = ProblemContext {
            path: "/nope".to_owned(),
            request_id: Some("r1".to_owned()),
        };
        let resp = render(poem::error::NotFoundError.into(), &ctx);
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.content_type(), Some(PROBLEM_JSON));
    }
}
