//! JWTs: verified with an allow-listed algorithm (HS256) and required `exp`, `iss`,
//! `aud`, `sub`, `iat`; refused before `nbf` (when present) and when issued in the
//! future, with [`LEEWAY_SECS`] for clock skew; issued only by `tenantry token`, the demo
//! start and tests.

use chrono::{TimeDelta, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tenancy::{Actor, CtxIssuer, TenantId};
use uuid::Uuid;

use super::{Credential, Principal, Scope};
use crate::problem::Problem;

/// Who a token was issued to; decides the [`Actor`] of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// A person signed in to an app; `sub` is the user's UUID.
    User,
    /// A third-party integration acting for the tenant; `sub` names the integration.
    Integrator,
    /// An internal service; `sub` is the service's name.
    Service,
}

/// The claims Tenantry requires. Unknown claims are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer; must equal the configured `TENANTRY_JWT_ISSUER`.
    pub iss: String,
    /// Audience (a string or an array); must contain the configured
    /// `TENANTRY_JWT_AUDIENCE`.
    pub aud: Audience,
    /// Subject: a user id, an integration id or a service name (see `typ`).
    pub sub: String,
    /// The tenant the token acts in.
    pub tenant: Uuid,
    /// The kind of caller.
    pub typ: TokenType,
    /// Granted scopes (`accounts:read`, …); unknown ones are ignored.
    pub scopes: Vec<String>,
    /// Unique token id.
    pub jti: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// The `aud` claim: one audience or several (RFC 7519 allows both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "tenantry-api"`.
    One(String),
    /// `"aud": ["tenantry-api", "other"]`.
    Many(Vec<String>),
}

/// The clock skew tolerated between the token's issuer and this server, in seconds: on
/// `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 30;

/// Verifies JWTs.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtVerifier([redacted])")
    }
}

impl JwtVerifier {
    /// A verifier for HS256 tokens signed with `secret`, from `issuer` for `audience`.
    pub fn new(secret: &[u8], issuer: &str, audience: &str) -> Self {
        // Only HS256: a token whose header names any other algorithm (including `none`)
        // is rejected before its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub", "iat"]);
        // `nbf` is optional, but a token that names one is not accepted before it.
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Self {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// The principal a valid token stands for.
    ///
    /// # Errors
    /// A 401 problem saying why the token was refused.
    pub fn verify(&self, token: &str, issuer: &CtxIssuer) -> Result<Principal, Problem> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf` is in the future)",
                ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                ErrorKind::InvalidAudience => "the token's audience is not this API",
                ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted (HS256 only)",
                ErrorKind::InvalidSignature => "the token's signature does not verify",
                ErrorKind::MissingRequiredClaim(_) | ErrorKind::Json(_) | ErrorKind::InvalidClaimFormat(_) => {
                    "the token lacks a required claim (iss, aud, sub, tenant, typ, scopes, jti, iat, exp)"
                }
                _ => "the token is not a valid JWT",
            };
            Problem::unauthenticated(why)
        })?;
        let claims = data.claims;
        // jsonwebtoken does not look at `iat`. A token "issued" later than now was minted
        // by a wrong clock or by someone planning ahead (a far-future `iat` with a
        // matching `exp` would never expire): refuse it. Saturating, so an absurd `iat`
        // cannot overflow.
        let latest = Utc::now()
            .timestamp()
            .saturating_add(LEEWAY_SECS.cast_signed());
        if claims.iat > latest {
            return Err(Problem::unauthenticated(
                "the token was issued in the future (`iat` is ahead of this server's clock)",
            ));
        }
        let actor = match claims.typ {
            TokenType::User => Actor::User(Uuid::parse_str(&claims.sub).map_err(|_| {
                Problem::unauthenticated("a user token's `sub` must be the user's UUID")
            })?),
            TokenType::Integrator => Actor::Service(format!("integrator:{}", claims.sub)),
            TokenType::Service => Actor::Service(claims.sub.clone()),
        };
        let typ = match claims.typ {
            TokenType::User => "user",
            TokenType::Integrator => "integrator",
            TokenType::Service => "service",
        };
        Ok(Principal {
            ctx: issuer.issue(TenantId::from_uuid(claims.tenant), actor),
            scopes: Scope::parse_all(&claims.scopes),
            credential: Credential::Jwt {
                typ,
                sub: claims.sub,
            },
        })
    }
}

/// Signs JWTs with the same key the verifier checks (development and tests only: in
/// production an identity provider issues them).
pub struct JwtIssuer {
    key: EncodingKey,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for JwtIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtIssuer([redacted])")
    }
}

impl JwtIssuer {
    /// An issuer signing with `secret` as `issuer` for `audience`.
    pub fn new(secret: &[u8], issuer: &str, audience: &str) -> Self {
        Self {
            key: EncodingKey::from_secret(secret),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
        }
    }

    /// A token for `sub` of type `typ` in `tenant` with `scopes`, valid for `ttl`.
    ///
    /// # Errors
    /// When signing fails (it does not for HS256 keys).
    pub fn issue(
        &self,
        tenant: TenantId,
        typ: TokenType,
        sub: &str,
        scopes: &[String],
        ttl: TimeDelta,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.issue_claims(&self.claims(tenant, typ, sub, scopes, ttl))
    }

    /// The claims [`issue`](Self::issue) would sign.
    pub fn claims(
        &self,
        tenant: TenantId,
        typ: TokenType,
        sub: &str,
        scopes: &[String],
        ttl: TimeDelta,
    ) -> Claims {
        let now = Utc::now().timestamp();
        Claims {
            iss: self.issuer.clone(),
            aud: Audience::One(self.audience.clone()),
            sub: sub.to_owned(),
            tenant: tenant.as_uuid(),
            typ,
            scopes: scopes.to_vec(),
            jti: Uuid::now_v7().to_string(),
            iat: now,
            exp: now + ttl.num_seconds(),
        }
    }

    /// Signs arbitrary claims (tests use it to forge bad tokens).
    ///
    /// # Errors
    /// When signing fails.
    pub fn issue_claims<C: Serialize>(
        &self,
        claims: &C,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn issuer() -> JwtIssuer {
        JwtIssuer::new(SECRET, "tenantry", "tenantry-api")
    }

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(SECRET, "tenantry", "tenantry-api")
    }

    fn claims() -> Claims {
        issuer().claims(
            TenantId::from_uuid(Uuid::now_v7()),
            TokenType::User,
            &Uuid::now_v7().to_string(),
            &["accounts:read".to_owned(), "made:up".to_owned()],
            TimeDelta::minutes(5),
        )
    }

    #[test]
    fn a_valid_user_token_yields_its_tenant_user_and_known_scopes() {
        let c = claims();
        let token = issuer().issue_claims(&c).unwrap_or_default();
        let p = verifier().verify(&token, &tenancy::testing::issuer());
        let Ok(p) = p else { panic!("{p:?}") };
        assert_eq!(p.ctx.tenant().as_uuid(), c.tenant);
        assert!(matches!(p.ctx.actor(), Actor::User(id) if id.to_string() == c.sub));
        assert!(p.has(Scope::AccountsRead) && !p.has(Scope::AccountsWrite));
    }

    #[test]
    fn expired_wrong_issuer_wrong_audience_and_forged_tokens_are_refused() {
        let mut expired = claims();
        expired.exp = Utc::now().timestamp() - 3600;
        let mut wrong_iss = claims();
        wrong_iss.iss = "someone-else".to_owned();
        let mut wrong_aud = claims();
        wrong_aud.aud = Audience::Many(vec!["other-api".to_owned()]);
        for c in [expired, wrong_iss, wrong_aud] {
            let token = issuer().issue_claims(&c).unwrap_or_default();
            assert_eq!(
                verifier()
                    .verify(&token, &tenancy::testing::issuer())
                    .err()
                    .map(|p| p.status),
                Some(401)
            );
        }
        let forged = JwtIssuer::new(
            b"another-secret-another-secret-xx",
            "tenantry",
            "tenantry-api",
        )
        .issue_claims(&claims())
        .unwrap_or_default();
        assert!(
            verifier()
                .verify(&forged, &tenancy::testing::issuer())
                .is_err()
        );
    }

    #[test]
    fn tokens_not_yet_valid_or_issued_in_the_future_are_refused_past_the_leeway() {
        let now = Utc::now().timestamp();
        let verify = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut value = serde_json::to_value(claims()).unwrap_or_default();
            edit(&mut value);
            let token = issuer().issue_claims(&value).unwrap_or_default();
            verifier()
                .verify(&token, &tenancy::testing::issuer())
                .err()
                .and_then(|p| p.detail)
        };
        let detail = verify(&|c| c["nbf"] = (now + 3600).into());
        assert!(detail.is_some_and(|d| d.contains("not valid yet")));
        let detail = verify(&|c| c["iat"] = (now + 3600).into());
        assert!(detail.is_some_and(|d| d.contains("issued in the future")));
        let detail = verify(&|c| c["iat"] = i64::MAX.into());
        assert!(detail.is_some_and(|d| d.contains("issued in the future")));
        // Within the leeway: accepted.
        assert_eq!(
            verify(&|c| {
                c["nbf"] = (now + 20).into();
                c["iat"] = (now + 20).into();
            }),
            None
        );
    }

    #[test]
    fn tokens_missing_a_required_claim_or_using_another_algorithm_are_refused() {
        let mut value = serde_json::to_value(claims()).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.remove("tenant");
        }
        let token = issuer().issue_claims(&value).unwrap_or_default();
        assert!(
            verifier()
                .verify(&token, &tenancy::testing::issuer())
                .is_err()
        );

        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap_or_default();
        assert!(
            verifier()
                .verify(&hs512, &tenancy::testing::issuer())
                .is_err()
        );

        // alg=none: header {"alg":"none"}, no signature.
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none = format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(serde_json::to_vec(&claims()).unwrap_or_default())
        );
        assert!(
            verifier()
                .verify(&none, &tenancy::testing::issuer())
                .is_err()
        );
    }

    #[test]
    fn integrator_and_service_tokens_act_as_services() {
        let mut c = claims();
        c.typ = TokenType::Integrator;
        c.sub = "zapier".to_owned();
        let token = issuer().issue_claims(&c).unwrap_or_default();
        let actor = verifier()
            .verify(&token, &tenancy::testing::issuer())
            .map(|p| p.ctx.actor().clone());
        assert_eq!(
            actor.ok(),
            Some(Actor::Service("integrator:zapier".to_owned()))
        );
    }
}
