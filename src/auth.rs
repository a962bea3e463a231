//! Who is asking: the [`Viewer`] of a request, from HTTP headers or a WebSocket
//! `connection_init` payload, in one of two modes.
//!
//! - `jwt`: `Authorization: Bearer <HS256 JWT>` with `sub` = user id and `role`; minted by
//!   `commerce token`.
//! - `dev`: `x-user-id` and `x-role` are trusted as sent (loopback binds only, see config).
//!
//! No credentials make an anonymous viewer (public reads only); wrong credentials are an error.

use std::sync::Arc;

use async_graphql::Enum;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthMode;
use crate::error::AppError;

/// Clock skew forgiven when checking a token's `exp` (and `nbf`): a token expired longer ago than
/// this is refused.
pub const JWT_LEEWAY_SECS: u64 = 5;

/// What a user may do.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Enum)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    /// Shops: sees and changes only their own balance, orders and coupons.
    Customer,
    /// Also creates users, products and coupon events, restocks, sees and cancels any order, and
    /// watches the outbox.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "CUSTOMER",
            Role::Admin => "ADMIN",
        }
    }

    pub fn parse(value: &str) -> Option<Role> {
        match value.trim().to_ascii_uppercase().as_str() {
            "CUSTOMER" => Some(Role::Customer),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The authenticated caller, if any. An admin may act without a user id (dev set-up).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: Option<i64>,
    pub role: Option<Role>,
}

impl Viewer {
    pub const ANONYMOUS: Viewer = Viewer {
        user_id: None,
        role: None,
    };

    pub fn is_admin(&self) -> bool {
        self.role == Some(Role::Admin)
    }

    /// The user acting, or UNAUTHENTICATED.
    pub fn require_user(&self) -> Result<i64, AppError> {
        self.user_id.ok_or(AppError::Unauthenticated)
    }

    /// Admins only: UNAUTHENTICATED without credentials, FORBIDDEN for customers.
    pub fn require_admin(&self) -> Result<(), AppError> {
        match self.role {
            Some(Role::Admin) => Ok(()),
            Some(Role::Customer) => Err(AppError::Forbidden),
            None => Err(AppError::Unauthenticated),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    iat: i64,
    exp: i64,
}

/// Turns credentials into a [`Viewer`] according to the configured mode.
#[derive(Clone)]
pub struct Authenticator {
    mode: AuthMode,
    keys: Option<Arc<(EncodingKey, DecodingKey)>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// Credentials as they arrive: header values or `connection_init` payload entries.
#[derive(Debug, Default)]
pub struct Credentials<'a> {
    pub authorization: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub role: Option<&'a str>,
}

impl Authenticator {
    pub fn new(mode: AuthMode, secret: Option<&str>) -> Self {
        let keys = secret.map(|s| {
            Arc::new((
                EncodingKey::from_secret(s.as_bytes()),
                DecodingKey::from_secret(s.as_bytes()),
            ))
        });
        Self { mode, keys }
    }

    pub fn mode(&self) -> AuthMode {
        self.mode
    }

    /// Mints an HS256 token for `user_id` valid for `ttl_secs`.
    pub fn mint(&self, user_id: i64, role: Role, ttl_secs: i64) -> anyhow::Result<String> {
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("JWT_SECRET is not set: cannot mint tokens"))?;
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            iat: now,
            exp: now + ttl_secs,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &keys.0,
        )?)
    }

    /// The viewer for these credentials; `Unauthenticated` when they are present but wrong.
    pub fn authenticate(&self, credentials: &Credentials<'_>) -> Result<Viewer, AppError> {
        match self.mode {
            AuthMode::Jwt => self.verify_jwt(credentials.authorization),
            AuthMode::Dev => match credentials.authorization {
                Some(auth) if self.keys.is_some() => self.verify_jwt(Some(auth)),
                _ => Self::trust_dev_headers(credentials.user_id, credentials.role),
            },
        }
    }

    fn verify_jwt(&self, authorization: Option<&str>) -> Result<Viewer, AppError> {
        let Some(header) = authorization else {
            return Ok(Viewer::ANONYMOUS);
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AppError::InvalidCredentials(
                "Authorization must be 'Bearer <token>'",
            ))?;
        let keys = self
            .keys
            .as_ref()
            .ok_or(AppError::InvalidCredentials("tokens are not accepted"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = JWT_LEEWAY_SECS;
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token.trim(), &keys.1, &validation)
            .map_err(|_| AppError::InvalidCredentials("invalid or expired token"))?;
        let user_id = data
            .claims
            .sub
            .parse::<i64>()
            .map_err(|_| AppError::InvalidCredentials("token subject is not a user id"))?;
        Ok(Viewer {
            user_id: Some(user_id),
            role: Some(data.claims.role),
        })
    }

    fn trust_dev_headers(user_id: Option<&str>, role: Option<&str>) -> Result<Viewer, AppError> {
        let user_id = match user_id.map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(raw) => Some(raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or(
                AppError::InvalidCredentials("x-user-id must be a positive integer"),
            )?),
        };
        let role = match role.map(str::trim).filter(|s| !s.is_empty()) {
            None => user_id.map(|_| Role::Customer),
            Some(raw) => Some(Role::parse(raw).ok_or(AppError::InvalidCredentials(
                "x-role must be CUSTOMER or ADMIN",
            ))?),
        };
        Ok(Viewer { user_id, role })
    }
}
