//! What the handlers share: the pool, the settings, the cursor codec, the
//! authenticator. Built once per server.

use std::sync::Arc;

use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use tenancy::Db;

use crate::auth::jwt::JwtVerifier;
use crate::auth::{Authenticator, UnscopedHandle};
use crate::context::tenants::Tenants;
use crate::cursor::CursorCodec;
use crate::metrics::Metrics;
use secrecy::{ExposeSecret as _, SecretString};

use crate::bootstrap::Secrets;
use crate::settings::Settings;
use crate::storage::StorageGuard;

/// Keys derived from `TENANTRY_SECRET_KEY`, one per purpose, so that no two features
/// share a key.
#[derive(Clone)]
pub struct Keys {
    /// The pepper of API-key secret hashes.
    pub api_key_pepper: [u8; 32],
    /// The cursor signing key.
    pub cursor: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys([redacted])")
    }
}

impl Keys {
    /// Derives the keys from the master secret: `HMAC-SHA256(master, label)`.
    pub fn derive(master: &SecretString) -> Self {
        let derive = |label: &str| -> [u8; 32] {
            let mut mac = <Hmac<Sha256>>::new_from_slice(master.expose_secret().as_bytes())
                .expect("HMAC accepts any key length");
            mac.update(label.as_bytes());
            mac.finalize().into_bytes().into()
        };
        Self {
            api_key_pepper: derive("tenantry/api-key-pepper/v1"),
            cursor: derive("tenantry/cursor/v1"),
        }
    }
}

/// Why the state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The metrics could not be registered (a programming error).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The rate-limit settings cannot work (or `REDIS_URL` does not parse).
    #[error("rate limits: {0}")]
    RateLimit(#[from] ratelimit::Error),
}

/// The state of one server.
#[derive(Debug)]
pub struct AppState {
    /// The pool, reached by handlers only through their prologue
    /// ([`crate::context::Operation::begin`]), for the verified principal's tenant.
    pub tenants: Tenants,
    /// Configuration.
    pub settings: Settings,
    /// Signs and verifies pagination cursors.
    pub cursors: CursorCodec,
    /// Verifies credentials; holds the only `Unscoped` a running server has.
    pub auth: Arc<Authenticator>,
    /// Request metrics.
    pub metrics: Metrics,
    /// The SQLite disk's reserve.
    pub storage: StorageGuard,
    /// The rate limiter (Redis or in-process); `None` when limits are disabled.
    pub limiter: Option<ratelimit::Limiter>,
}

impl AppState {
    /// Builds the state. `unscoped` goes to the authenticator (the API-key lookup by
    /// prefix) and nowhere else.
    ///
    /// Must run inside a Tokio runtime when `REDIS_URL` is set (the Redis connection is
    /// prepared, not awaited: the server starts even while Redis is down).
    ///
    /// # Errors
    /// When the metrics cannot be registered (a programming error), or the rate-limit
    /// settings cannot work.
    pub fn new(
        db: Db,
        unscoped: Arc<dyn UnscopedHandle>,
        settings: Settings,
        secrets: &Secrets,
    ) -> Result<Self, StateError> {
        let keys = Keys::derive(&secrets.secret_key);
        let verifier = JwtVerifier::new(
            secrets.jwt_secret.expose_secret().as_bytes(),
            &settings.jwt_issuer,
            &settings.jwt_audience,
        );
        let auth = Arc::new(Authenticator::new(
            verifier,
            keys.api_key_pepper,
            unscoped,
            db.clone(),
            settings.api_key_cache_ttl,
        ));
        Ok(Self {
            tenants: Tenants::new(db),
            cursors: CursorCodec::new(keys.cursor),
            auth,
            metrics: Metrics::new()?,
            limiter: crate::limits::limiter(&settings)?,
            storage: StorageGuard::new(
                settings.database_url().expose_secret(),
                settings.sqlite_min_free_bytes,
            ),
            settings,
        })
    }
}
