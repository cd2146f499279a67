//! The crate's one error type: what went wrong, in domain terms, never in HTTP terms.

use std::fmt;

/// The kinds of thing an error can be about, so callers can say *what* was not found
/// or conflicted without parsing a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Resource {
    /// A row of `tenants`.
    Tenant,
    /// A row of `users`.
    User,
    /// A row of `api_keys`.
    ApiKey,
    /// A row of `accounts`.
    Account,
    /// A row of `people`.
    Person,
    /// A row of `activities`.
    Activity,
    /// A row of `idempotency_keys`.
    IdempotencyKey,
}

impl Resource {
    /// The resource's name in `snake_case` (stable: the API may put it in messages).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::User => "user",
            Self::ApiKey => "api_key",
            Self::Account => "account",
            Self::Person => "person",
            Self::Activity => "activity",
            Self::IdempotencyKey => "idempotency_key",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field in the input, e.g. `email`, `custom_fields`, `scopes[2]`.
    pub field: String,
    /// Stable machine-readable reason, e.g. `invalid_email`, `too_long`, `required`.
    pub code: &'static str,
    /// Human-readable explanation, safe to show to the caller.
    pub message: String,
}

impl FieldError {
    /// A failure of `field` with `code` and `message`.
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.message, self.code)
    }
}

/// Everything a domain operation can fail with. HTTP-agnostic: the API maps each
/// variant to a problem response once, at its edge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The resource does not exist in the caller's tenant, or is deleted. Another
    /// tenant's row is reported exactly like a missing one.
    ///
    /// `field` is set when the missing row was *referenced* by the input (e.g.
    /// `account_id` of a new person): the request named something that does not exist.
    #[error("{resource} not found")]
    NotFound {
        /// What was looked for.
        resource: Resource,
        /// The input field that referenced it, if the lookup came from a reference.
        field: Option<&'static str>,
    },
    /// An update or delete named a version that is no longer current; nothing changed.
    #[error("{resource} is at version {current}, not {expected}")]
    VersionMismatch {
        /// What was to be changed.
        resource: Resource,
        /// The version the caller expected.
        expected: i64,
        /// The version the row has now.
        current: i64,
    },
    /// The write would duplicate a value that must be unique; nothing was written.
    #[error("a {resource} with this {field} already exists")]
    Conflict {
        /// What was to be written.
        resource: Resource,
        /// The field whose value is taken.
        field: &'static str,
    },
    /// The input is invalid; nothing was written. Every failing field is listed.
    #[error("invalid input: {}", join(.0))]
    Validation(Vec<FieldError>),
    /// A stored row breaks a domain rule (e.g. an unknown enum value written by hand).
    #[error("stored {resource} is invalid: {detail}")]
    Corrupt {
        /// The row's resource.
        resource: Resource,
        /// What is wrong with it (internal; not for the caller).
        detail: String,
    },
    /// The database is out of reach (down, restarting, full, or no connection free in
    /// time): nothing was acknowledged; retrying later may succeed.
    #[error("storage unavailable")]
    Unavailable(#[source] tenancy::Error),
    /// An idempotency key was used again with a different request (another body or
    /// operation); nothing was written. See [`crate::idempotency::once`].
    #[error("this idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// Concurrent changes to one row kept winning the race; nothing was written.
    #[error("{resource} is changing too often to update; retry")]
    Contention {
        /// The row's resource.
        resource: Resource,
    },
    /// The database failed; the source carries the internal detail.
    #[error("storage failure")]
    Storage(#[source] tenancy::Error),
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<tenancy::Error> for Error {
    fn from(error: tenancy::Error) -> Self {
        if error.is_unavailable() {
            Self::Unavailable(error)
        } else {
            Self::Storage(error)
        }
    }
}

impl Error {
    /// A validation error on one field.
    pub(crate) fn invalid(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::Validation(vec![FieldError::new(field, code, message)])
    }

    /// `NotFound` for a row addressed directly (by id in the path).
    pub(crate) const fn not_found(resource: Resource) -> Self {
        Self::NotFound {
            resource,
            field: None,
        }
    }

    /// `NotFound` for a row referenced by input `field`.
    pub(crate) const fn missing_reference(resource: Resource, field: &'static str) -> Self {
        Self::NotFound {
            resource,
            field: Some(field),
        }
    }
}

/// Maps a unique violation of an insert to [`Error::Conflict`] on `field`; any other
/// failure stays a storage error.
pub(crate) fn conflict_on(
    resource: Resource,
    field: &'static str,
) -> impl Fn(tenancy::Error) -> Error {
    move |error| match error {
        tenancy::Error::UniqueViolation(_) => Error::Conflict { resource, field },
        other => other.into(),
    }
}

/// Result of every fallible operation in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
