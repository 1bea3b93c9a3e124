//! Token cache: reuse until shortly before expiry, refresh ahead, one request
//! in flight per (authority, tenant, client, certificate, scope) key.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use continuity_core::access_token::{AccessToken, AccessTokenSource};

use crate::app_registration::AppRegistration;
use crate::error::GraphError;
use crate::token_client::TokenClient;

/// Default refresh-ahead margin: a token is renewed once 5 minutes or less remain.
pub const DEFAULT_REFRESH_AHEAD: TimeDelta = TimeDelta::minutes(5);

/// While another caller refreshes, a token with at least this much life left
/// is handed out instead of waiting.
const MIN_VALIDITY: TimeDelta = TimeDelta::seconds(30);

type Key = (String, String, String, String, String);

/// Shared cache of app-only tokens for any number of tenants and scopes.
///
/// Get an [`AccessTokenSource`] per (app, scope) with [`source`](TokenCache::source).
#[derive(Debug)]
pub struct TokenCache {
    client: TokenClient,
    refresh_ahead: TimeDelta,
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    /// Read on every call by every thread: an `ArcSwap` load writes only to
    /// the reading thread's own slot, so readers do not bounce a shared
    /// cache line between cores as a lock's reader count does.
    current: ArcSwapOption<Cached>,
    /// Held by the one caller that is requesting a token for this key.
    refresh: tokio::sync::Mutex<Option<GraphError>>,
    /// Finished token requests, so that a waiter learns that the request it
    /// waited for failed instead of sending its own.
    attempts: AtomicU64,
}

/// A token and when to stop serving it without a refresh, precomputed so
/// that a cache hit is one clock reading and one integer comparison.
struct Cached {
    token: AccessToken,
    /// `expires_at - refresh_ahead`, in Unix milliseconds.
    refresh_at_ms: i64,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot")
            .field("attempts", &self.attempts.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache requesting through `client`, refreshing 5 minutes ahead.
    pub fn new(client: TokenClient) -> Arc<Self> {
        Self::with_refresh_ahead(client, DEFAULT_REFRESH_AHEAD)
    }

    /// A cache refreshing once `refresh_ahead` or less remain on a token.
    pub fn with_refresh_ahead(client: TokenClient, refresh_ahead: TimeDelta) -> Arc<Self> {
        Arc::new(TokenCache {
            client,
            refresh_ahead,
            slots: Mutex::new(HashMap::new()),
        })
    }

    /// The token source for `app` and `scope`; sources for the same key share one cached token.
    pub fn source(
        self: &Arc<Self>,
        app: Arc<AppRegistration>,
        scope: impl Into<String>,
    ) -> CachedTokenSource {
        let scope = scope.into();
        let key = (
            app.authority().base_url().to_owned(),
            app.tenant().to_ascii_lowercase(),
            app.client_id().to_owned(),
            app.credential().x5t_s256().to_owned(),
            scope.clone(),
        );
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        CachedTokenSource {
            cache: self.clone(),
            app,
            scope,
            slot,
        }
    }

    async fn access_token(
        &self,
        app: &AppRegistration,
        scope: &str,
        slot: &Slot,
    ) -> Result<AccessToken, GraphError> {
        {
            let current = slot.current.load();
            if let Some(c) = current.as_deref()
                && self.client.clock().unix_millis() < c.refresh_at_ms
            {
                return Ok(c.token.clone());
            }
        }
        let now = self.client.clock().now();
        let cached = read(slot);
        let seen = slot.attempts.load(Ordering::Acquire);
        let mut last_error = match slot.refresh.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                // Someone is refreshing; a token still good for a while serves meanwhile.
                if let Some(t) = cached
                    && !t.expires_within(now, MIN_VALIDITY)
                {
                    return Ok(t);
                }
                slot.refresh.lock().await
            }
        };
        let now = self.client.clock().now();
        if let Some(t) = read(slot)
            && !t.expires_within(now, self.refresh_ahead)
        {
            return Ok(t);
        }
        if slot.attempts.load(Ordering::Acquire) != seen
            && let Some(e) = last_error.as_ref()
        {
            return Err(e.clone());
        }
        let result = self.client.request_token(app, scope).await;
        let outcome = match result {
            Ok(token) => {
                let refresh_at = token
                    .expires_at()
                    .checked_sub_signed(self.refresh_ahead)
                    .unwrap_or(DateTime::<Utc>::MIN_UTC);
                slot.current.store(Some(Arc::new(Cached {
                    token: token.clone(),
                    refresh_at_ms: refresh_at.timestamp_millis(),
                })));
                *last_error = None;
                Ok(token)
            }
            Err(e) => {
                *last_error = Some(e.clone());
                match read(slot) {
                    Some(t) if !t.expires_within(self.client.clock().now(), MIN_VALIDITY) => {
                        tracing::warn!(tenant = app.tenant(), scope, error = %e, "token refresh failed; the current token serves until it expires");
                        Ok(t)
                    }
                    _ => Err(e),
                }
            }
        };
        slot.attempts.fetch_add(1, Ordering::AcqRel);
        outcome
    }
}

fn read(slot: &Slot) -> Option<AccessToken> {
    slot.current.load().as_deref().map(|c| c.token.clone())
}

/// An [`AccessTokenSource`] for one app registration and scope, served from a [`TokenCache`].
#[derive(Clone, Debug)]
pub struct CachedTokenSource {
    cache: Arc<TokenCache>,
    app: Arc<AppRegistration>,
    scope: String,
    slot: Arc<Slot>,
}

impl CachedTokenSource {
    /// A valid token, with the typed error if none can be had.
    pub async fn get(&self) -> Result<AccessToken, GraphError> {
        self.cache
            .access_token(&self.app, &self.scope, &self.slot)
            .await
    }

    /// The scope tokens are for.
    pub fn scope(&self) -> &str {
        &self.scope
    }
}

#[async_trait]
impl AccessTokenSource for CachedTokenSource {
    async fn access_token(&self) -> continuity_core::Result<AccessToken> {
        Ok(self.get().await?)
    }

    fn invalidate(&self, token: &AccessToken) {
        // Only the refused token goes: a newer one another caller fetched meanwhile stays.
        self.slot.current.rcu(|current| match current {
            Some(c) if c.token == *token => None,
            other => other.clone(),
        });
    }
}
