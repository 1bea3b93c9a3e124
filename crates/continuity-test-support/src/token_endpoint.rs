//! A local Entra ID token endpoint (`/{tenant}/oauth2/v2.0/token`) that
//! checks client assertions as Azure AD does (thumbprint header, signature
//! with a registered certificate, audience, issuer, lifetime with five
//! minutes of skew, replay of `jti`, consent) and issues signed access tokens
//! carrying the app's roles; [`verify_access_token`] checks them as a
//! resource (Graph, Exchange Online) does.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use continuity_core::{Clock, ManualClock};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::app_cert::AppCert;

/// The test application's client id.
pub const CLIENT_ID: &str = "6731de76-14a6-49ae-97bc-6eba6914391e";
/// The test tenant.
pub const TENANT: &str = "contoso.onmicrosoft.com";
/// The scope of Microsoft Graph tokens.
pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The scope of Exchange Online (EWS) tokens.
pub const EWS_SCOPE: &str = "https://outlook.office365.com/.default";

/// What the local endpoint knows: tenants, their apps, the certificates
/// registered on each app, and the resources each app has consent for.
#[derive(Debug)]
pub struct Directory {
    /// tenant → client id → registered certificates (DER).
    pub apps: HashMap<String, HashMap<String, Vec<Vec<u8>>>>,
    /// (tenant, client id) → consented scopes.
    pub consent: HashMap<(String, String), HashSet<String>>,
    /// (tenant, client id) → application permissions granted (the token's `roles`).
    pub roles: HashMap<(String, String), Vec<String>>,
    /// `expires_in` of issued tokens.
    pub expires_in: i64,
    /// Delay before answering (to make callers pile up).
    pub delay: Duration,
}

/// The running endpoint; stopped on drop.
#[derive(Debug)]
pub struct Endpoint {
    /// `http://127.0.0.1:<port>`: the authority to give the app registration.
    pub base_url: String,
    /// Token requests received.
    pub requests: Arc<AtomicUsize>,
    /// Access tokens issued.
    pub issued: Arc<AtomicUsize>,
    /// What it knows; change it while running.
    pub dir: Arc<Mutex<Directory>>,
    /// The client assertion of the last request.
    pub last_assertion: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Ctx {
    base_url: String,
    clock: ManualClock,
    dir: Arc<Mutex<Directory>>,
    requests: Arc<AtomicUsize>,
    issued: Arc<AtomicUsize>,
    seen_jti: Arc<Mutex<HashSet<String>>>,
    last_assertion: Arc<Mutex<Option<String>>>,
}

/// A directory with `TENANT`, the app `CLIENT_ID` trusting `cert`, consented for Graph and EWS.
pub fn directory(cert: &AppCert) -> Directory {
    let mut apps = HashMap::new();
    apps.insert(
        TENANT.to_string(),
        HashMap::from([(CLIENT_ID.to_string(), vec![cert.cert_der.clone()])]),
    );
    let consent = HashMap::from([(
        (TENANT.to_string(), CLIENT_ID.to_string()),
        HashSet::from([GRAPH_SCOPE.to_string(), EWS_SCOPE.to_string()]),
    )]);
    let roles = HashMap::from([(
        (TENANT.to_string(), CLIENT_ID.to_string()),
        vec!["Mail.Send".to_string(), "Mail.ReadWrite".to_string()],
    )]);
    Directory {
        apps,
        consent,
        roles,
        expires_in: 3900,
        delay: Duration::ZERO,
    }
}

/// Starts the endpoint on a free loopback port (on the current tokio
/// runtime); its time is `clock`.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn start(dir: Directory, clock: ManualClock) -> Endpoint {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let ctx = Ctx {
        base_url: base_url.clone(),
        clock,
        dir: Arc::new(Mutex::new(dir)),
        requests: Arc::default(),
        issued: Arc::default(),
        seen_jti: Arc::default(),
        last_assertion: Arc::default(),
    };
    Endpoint {
        base_url,
        requests: ctx.requests.clone(),
        issued: ctx.issued.clone(),
        dir: ctx.dir.clone(),
        last_assertion: ctx.last_assertion.clone(),
        task: tokio::spawn(async move {
            let app = axum::Router::new()
                .route("/{tenant}/oauth2/v2.0/token", axum::routing::post(token))
                .with_state(ctx);
            axum::serve(listener, app).await.unwrap();
        }),
    }
}

fn refuse(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {text}\r\nTrace ID: 0000\r\nCorrelation ID: 1111\r\nTimestamp: 2026-01-01 00:00:00Z"),
            "error_codes": [code],
            "timestamp": "2026-01-01 00:00:00Z",
            "trace_id": "0000",
            "correlation_id": "1111",
            "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
        })),
    )
        .into_response()
}

fn bad(code: u32, text: &str) -> Response {
    refuse(StatusCode::BAD_REQUEST, "invalid_request", code, text)
}

fn invalid_client(code: u32, text: &str) -> Response {
    refuse(StatusCode::UNAUTHORIZED, "invalid_client", code, text)
}

async fn token(
    State(ctx): State<Ctx>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    ctx.requests.fetch_add(1, Ordering::SeqCst);
    let delay = ctx.dir.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let f = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if f("grant_type") != "client_credentials" {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "unsupported grant type",
        );
    }
    if f("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        || f("client_assertion").is_empty()
    {
        return invalid_client(
            7000218,
            "The request body must contain 'client_assertion' or 'client_secret'.",
        );
    }
    *ctx.last_assertion.lock().unwrap() = Some(f("client_assertion").to_string());
    let client_id = f("client_id");
    let scope = f("scope");
    let dir = ctx.dir.lock().unwrap();
    let Some(apps) = dir.apps.get(&tenant) else {
        return bad(90002, &format!("Tenant '{tenant}' not found."));
    };
    let Some(certs) = apps.get(client_id) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
        );
    };
    // Header: typ JWT, and the thumbprint header matching the algorithm.
    let assertion = f("client_assertion");
    let Ok(header) = jsonwebtoken::decode_header(assertion) else {
        return invalid_client(50027, "JWT token is invalid or malformed.");
    };
    if header.typ.as_deref() != Some("JWT") {
        return invalid_client(50027, "JWT typ must be JWT.");
    }
    let thumb_s256 = |der: &Vec<u8>| URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der));
    let thumb_sha1 = |der: &Vec<u8>| URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der));
    let cert = match (header.alg, &header.x5t_s256, &header.x5t) {
        (Algorithm::PS256, Some(t), None) => certs.iter().find(|c| &thumb_s256(c) == t),
        (Algorithm::RS256, None, Some(t)) => certs.iter().find(|c| &thumb_sha1(c) == t),
        _ => return invalid_client(50027, "Unsupported algorithm or thumbprint header."),
    };
    let Some(cert) = cert else {
        return invalid_client(
            700027,
            &format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{:?}']",
                header.x5t_s256.or(header.x5t)
            ),
        );
    };
    // Signature, with the registered certificate's public key.
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).unwrap();
    let key = DecodingKey::from_rsa_der(&parsed.public_key().subject_public_key.data);
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims = HashSet::new();
    let claims: Value = match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return invalid_client(
                7000274,
                &format!("Client assertion contains an invalid signature: {e}"),
            );
        }
    };
    let expected_aud = format!("{}/{tenant}/oauth2/v2.0/token", ctx.base_url);
    if claims["aud"].as_str() != Some(expected_aud.as_str()) {
        return invalid_client(
            700027,
            &format!(
                "Client assertion failed signature validation. [Reason - The audience claim is invalid: {}]",
                claims["aud"]
            ),
        );
    }
    if claims["iss"].as_str() != Some(client_id) {
        return invalid_client(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        );
    }
    if claims["sub"] != claims["iss"] {
        return invalid_client(
            50048,
            "Subject does not match Issuer claim in the client assertion.",
        );
    }
    let (Some(nbf), Some(iat), Some(exp)) = (
        claims["nbf"].as_i64(),
        claims["iat"].as_i64(),
        claims["exp"].as_i64(),
    ) else {
        return invalid_client(50027, "nbf, iat and exp must be numeric.");
    };
    let now = ctx.clock.now().timestamp();
    // Azure AD allows five minutes of clock skew.
    let skew = 300;
    if now > exp + skew || now + skew < nbf || exp <= nbf || iat > exp {
        return invalid_client(
            700024,
            "Client assertion is not within its valid time range.",
        );
    }
    let Some(jti) = claims["jti"].as_str().filter(|j| !j.is_empty()) else {
        return invalid_client(50027, "jti missing.");
    };
    if !ctx.seen_jti.lock().unwrap().insert(jti.to_string()) {
        return invalid_client(700025, "Client assertion jti was already used (replay).");
    }
    let consented = dir
        .consent
        .get(&(tenant.clone(), client_id.to_string()))
        .is_some_and(|s| s.contains(scope));
    if !consented {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            65001,
            "The user or administrator has not consented to use the application.",
        );
    }
    let n = ctx.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let roles = dir
        .roles
        .get(&(tenant.clone(), client_id.to_string()))
        .cloned()
        .unwrap_or_default();
    let claims = AccessClaims {
        aud: scope.trim_end_matches("/.default").to_string(),
        iss: format!("https://sts.windows.net/{tenant}/"),
        tid: tenant.clone(),
        appid: client_id.to_string(),
        roles,
        iat: now,
        nbf: now,
        exp: now + dir.expires_in,
        uti: format!("token-{n}"),
    };
    let access_token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(ACCESS_TOKEN_KEY).unwrap(),
    )
    .unwrap();
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": dir.expires_in,
        "ext_expires_in": dir.expires_in,
        "access_token": access_token,
    }))
    .into_response()
}

/// The key the local endpoint signs access tokens with and the local Graph checks them with.
const ACCESS_TOKEN_KEY: &[u8] = b"continuity-test-access-token-key";

/// The claims of an access token the local endpoint issues (the subset of
/// Entra ID's v1 tokens a resource checks).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AccessClaims {
    /// The resource (the scope without `/.default`).
    pub aud: String,
    /// `https://sts.windows.net/<tenant>/`.
    pub iss: String,
    /// The tenant.
    pub tid: String,
    /// The client id.
    pub appid: String,
    /// The application permissions granted.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// The token's unique id (`token-<n>`).
    pub uti: String,
}

/// Checks an access token as a resource does: signature, audience `aud`, time (on `now`).
pub fn verify_access_token(token: &str, aud: &str, now: i64) -> Result<AccessClaims, String> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_audience(&[aud]);
    let claims = jsonwebtoken::decode::<AccessClaims>(
        token,
        &DecodingKey::from_secret(ACCESS_TOKEN_KEY).unwrap(),
        &validation,
    )
    .map_err(|e| e.to_string())?
    .claims;
    if now >= claims.exp {
        return Err("Lifetime validation failed, the token is expired.".into());
    }
    if now < claims.nbf {
        return Err("the token is not yet valid".into());
    }
    Ok(claims)
}
