//! The client assertion JWT the Microsoft identity platform expects
//! (PROTOCOLS.md §6.3), built freshly for every token request.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};

use crate::credential::CertificateCredential;
use crate::error::GraphError;

/// Where tokens come from: the Entra ID cloud the tenant lives in. In
/// configuration `"public"`, `"us_government"`, `"china"` or
/// `{ custom = "https://login.example.test" }`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Authority {
    /// `https://login.microsoftonline.com` (the default).
    #[default]
    Public,
    /// `https://login.microsoftonline.us` (US Government).
    UsGovernment,
    /// `https://login.chinacloudapi.cn` (operated by 21Vianet).
    China,
    /// Any other base URL without a trailing slash, e.g. a local test endpoint.
    Custom(String),
}

impl Authority {
    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        match self {
            Authority::Public => "https://login.microsoftonline.com",
            Authority::UsGovernment => "https://login.microsoftonline.us",
            Authority::China => "https://login.chinacloudapi.cn",
            Authority::Custom(url) => url.trim_end_matches('/'),
        }
    }

    /// The tenant's v2.0 token endpoint (also the assertion's `aud`).
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.base_url())
    }

    /// The Microsoft Graph service root (v1.0) of this cloud; `None` for a
    /// custom authority, whose Graph endpoint must be configured.
    pub fn graph_endpoint(&self) -> Option<&'static str> {
        match self {
            Authority::Public => Some("https://graph.microsoft.com/v1.0"),
            Authority::UsGovernment => Some("https://graph.microsoft.us/v1.0"),
            Authority::China => Some("https://microsoftgraph.chinacloudapi.cn/v1.0"),
            Authority::Custom(_) => None,
        }
    }

    /// The `/.default` token scope of this cloud's Graph; `None` for a custom authority.
    pub fn graph_scope(&self) -> Option<&'static str> {
        match self {
            Authority::Public => Some("https://graph.microsoft.com/.default"),
            Authority::UsGovernment => Some("https://graph.microsoft.us/.default"),
            Authority::China => Some("https://microsoftgraph.chinacloudapi.cn/.default"),
            Authority::Custom(_) => None,
        }
    }
}

/// The assertion's signature algorithm and thumbprint header. In
/// configuration `"ps256"` or `"rs256"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AssertionAlgorithm {
    /// PS256 (RSASSA-PSS, SHA-256) with `x5t#S256`: what the current docs ask for (default).
    #[default]
    Ps256,
    /// RS256 (RSASSA-PKCS1-v1_5, SHA-256) with `x5t` (SHA-1): the older form, as a fallback.
    Rs256,
}

/// Assertion lifetime when not configured: 10 minutes, the longest the docs allow.
pub const DEFAULT_ASSERTION_LIFETIME: TimeDelta = TimeDelta::minutes(10);

/// One Entra ID app registration in one tenant, trusted through a certificate.
#[derive(Clone, Debug)]
pub struct AppRegistration {
    authority: Authority,
    tenant: String,
    client_id: String,
    credential: Arc<CertificateCredential>,
    algorithm: AssertionAlgorithm,
    assertion_lifetime: TimeDelta,
}

impl AppRegistration {
    /// The app `client_id` in `tenant` (GUID or verified domain) on the public
    /// cloud, PS256 assertions living 10 minutes.
    pub fn new(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        credential: Arc<CertificateCredential>,
    ) -> Result<Self, GraphError> {
        let tenant = tenant.into();
        let client_id = client_id.into();
        // The tenant goes into the URL path and the audience: keep it to the
        // characters a GUID or a DNS name has. `common`/`organizations` are
        // refused because app-only tokens need the tenant's own endpoint.
        if tenant.is_empty()
            || tenant.len() > 253
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(GraphError::InvalidConfig {
                field: "tenant",
                reason: format!("{tenant:?} is not a tenant GUID or domain"),
            });
        }
        if matches!(
            tenant.to_ascii_lowercase().as_str(),
            "common" | "organizations" | "consumers"
        ) {
            return Err(GraphError::InvalidConfig {
                field: "tenant",
                reason: format!("{tenant:?}: app-only tokens need the tenant's GUID or domain"),
            });
        }
        if client_id.trim().is_empty() {
            return Err(GraphError::InvalidConfig {
                field: "client_id",
                reason: "empty".into(),
            });
        }
        Ok(AppRegistration {
            authority: Authority::Public,
            tenant,
            client_id,
            credential,
            algorithm: AssertionAlgorithm::Ps256,
            assertion_lifetime: DEFAULT_ASSERTION_LIFETIME,
        })
    }

    /// Uses another cloud.
    pub fn with_authority(mut self, authority: Authority) -> Self {
        self.authority = authority;
        self
    }

    /// Signs with `algorithm`.
    pub fn with_algorithm(mut self, algorithm: AssertionAlgorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets how long an assertion is valid: 5 to 10 minutes, as the docs require.
    pub fn with_assertion_lifetime(mut self, lifetime: TimeDelta) -> Result<Self, GraphError> {
        if lifetime < TimeDelta::minutes(5) || lifetime > TimeDelta::minutes(10) {
            return Err(GraphError::InvalidConfig {
                field: "assertion_lifetime",
                reason: format!("{} s; must be 300 to 600 s", lifetime.num_seconds()),
            });
        }
        self.assertion_lifetime = lifetime;
        Ok(self)
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The application (client) id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The authority.
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The certificate credential.
    pub fn credential(&self) -> &CertificateCredential {
        &self.credential
    }

    /// The signing algorithm.
    pub fn algorithm(&self) -> AssertionAlgorithm {
        self.algorithm
    }

    /// The tenant's token endpoint.
    pub fn token_endpoint(&self) -> String {
        self.authority.token_endpoint(&self.tenant)
    }

    /// A new signed client assertion valid from `now`, with a fresh `jti`.
    pub fn client_assertion(&self, now: DateTime<Utc>) -> Result<String, GraphError> {
        let mut header = Header::new(match self.algorithm {
            AssertionAlgorithm::Ps256 => Algorithm::PS256,
            AssertionAlgorithm::Rs256 => Algorithm::RS256,
        });
        header.typ = Some("JWT".into());
        match self.algorithm {
            AssertionAlgorithm::Ps256 => header.x5t_s256 = Some(self.credential.x5t_s256().into()),
            AssertionAlgorithm::Rs256 => header.x5t = Some(self.credential.x5t().into()),
        }
        let nbf = now.timestamp();
        let aud = self.token_endpoint();
        let claims = Claims {
            aud: &aud,
            iss: &self.client_id,
            sub: &self.client_id,
            jti: random_uuid(),
            nbf,
            iat: nbf,
            exp: nbf + self.assertion_lifetime.num_seconds(),
        };
        jsonwebtoken::encode(&header, &claims, self.credential.encoding_key()).map_err(|e| {
            GraphError::Signing {
                reason: e.to_string(),
            }
        })
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// A random (version 4) UUID, the form Entra ID's own libraries use for `jti`.
pub(crate) fn random_uuid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!(
        "{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}
