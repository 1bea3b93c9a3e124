//! The continuity portal: the pages an administrator opens from an alert's
//! link, and a JSON API for automation, as an axum [`Router`] to nest under
//! any prefix of the embedder's own service.
//!
//! Routes, relative to where the router is nested (`LINK` is the link's
//! signed text, what follows the portal URL in an alert):
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `LINK` | the status page |
//! | GET, POST | `LINK/{start,extend,end,schedule,cancel,suspend,lift}` | an action's form, and doing it |
//! | GET | `api/LINK` | the status as JSON, with the CSRF token for actions |
//! | POST | `api/LINK/{action}` | an action, JSON in and out |
//! | GET | `api/openapi.json` | the JSON API described as an OpenAPI 3.1 document ([`OPENAPI`]) |
//!
//! Pages are server-rendered, escaped, without scripts and readable on a
//! phone. Every response carries `Referrer-Policy: no-referrer`, a strict
//! `Content-Security-Policy`, `X-Frame-Options: DENY` and
//! `Cache-Control: no-store`. POSTs need the CSRF token bound to the link;
//! bodies are bounded; every bad input is answered with a 4xx page.
//!
//! ```
//! use std::sync::Arc;
//! use axum::{body::Body, http::{Request, StatusCode}};
//! use continuity_core::{
//!     config::{ChannelKind, Recipient, TenantConfig},
//!     link::{LinkClaims, LinkKey, LinkSigner},
//!     testing::RecordingNotifier,
//!     ManualClock, Monitor, TenantId,
//! };
//! use continuity_portal::{router, PortalOptions};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = "2026-03-02T08:00:00Z".parse()?;
//! let monitor = Arc::new(
//!     Monitor::builder()
//!         .in_memory_store()
//!         .clock(Arc::new(ManualClock::new(now)))
//!         .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
//!         .link_signer(LinkSigner::new(LinkKey::new("k1", [7u8; 32])?))
//!         .portal_url("https://ops.example.net/continuity/")
//!         .build()?,
//! );
//! let acme = TenantId::new("acme")?;
//! monitor
//!     .register_tenant(TenantConfig::new(acme.clone(), vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")]))
//!     .await?;
//! let link = monitor.link_signer().sign(&LinkClaims { tenant: acme, alert_id: 1, recipient: "ops".into() }, now)?;
//!
//! // Nested under the embedder's prefix.
//! let app = axum::Router::new().nest("/continuity", router(monitor, PortalOptions::new([3u8; 32])?));
//! let response = app
//!     .oneshot(Request::get(format!("/continuity/{link}")).body(Body::empty())?)
//!     .await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.headers()["referrer-policy"], "no-referrer");
//! # Ok(()) }
//! ```

mod chart;
mod csrf;
mod error;
mod handlers;
mod html;
mod input;
mod openapi;
mod pages;
mod settings;

use std::sync::Arc;

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, header},
    middleware,
    response::Response,
    routing::{get, post},
};
use continuity_core::Monitor;

pub use error::{PortalError, Result};
pub use openapi::OPENAPI;
pub use settings::PortalSettings;

/// How the portal runs.
#[derive(Clone)]
pub struct PortalOptions {
    csrf_key: Arc<[u8]>,
    body_limit: usize,
}

impl std::fmt::Debug for PortalOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalOptions")
            .field("csrf_key", &"<redacted>")
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

impl PortalOptions {
    /// Shortest CSRF key accepted, in bytes.
    pub const MIN_CSRF_KEY_LEN: usize = 32;
    /// Default bound on request bodies: 8 KiB (a form here is under 300 bytes).
    pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024;

    /// Options with `csrf_key`, the secret the CSRF tokens of forms are
    /// derived from (at least [`Self::MIN_CSRF_KEY_LEN`] random bytes, kept
    /// across restarts and shared by all instances, or open forms fail).
    ///
    /// # Errors
    ///
    /// [`PortalError::CsrfKeyTooShort`].
    pub fn new(csrf_key: impl Into<Vec<u8>>) -> Result<Self> {
        let key: Vec<u8> = csrf_key.into();
        if key.len() < Self::MIN_CSRF_KEY_LEN {
            return Err(PortalError::CsrfKeyTooShort {
                len: key.len(),
                min: Self::MIN_CSRF_KEY_LEN,
            });
        }
        Ok(PortalOptions {
            csrf_key: key.into(),
            body_limit: Self::DEFAULT_BODY_LIMIT,
        })
    }

    /// Bounds request bodies to `bytes` (default [`Self::DEFAULT_BODY_LIMIT`]).
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }
}

/// The portal's router, to nest under any prefix.
pub fn router(monitor: Arc<Monitor>, options: PortalOptions) -> Router {
    let state = Arc::new(handlers::Portal {
        monitor,
        csrf: csrf::Csrf::new(&options.csrf_key),
    });
    Router::new()
        // A static segment: matched before `/api/{token}`, and no link is
        // ever `openapi.json` (links are base64url, no dot).
        .route(openapi::PATH, get(openapi::document))
        .route("/api/{token}", get(handlers::api_status))
        .route("/api/{token}/{action}", post(handlers::api_act))
        .route("/{token}", get(handlers::status_page))
        .route(
            "/{token}/{action}",
            get(handlers::form_page).post(handlers::act_page),
        )
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(options.body_limit))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(csp) = HeaderValue::from_str(&html::CSP) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}
