//! One HTTP/1.1 connection owned by the caller, for NTLM.
//!
//! NTLM authenticates a TCP connection, not a request: NEGOTIATE,
//! AUTHENTICATE and the later requests must travel on the same connection.
//! A pooled client cannot promise that (it may open a new connection while
//! the previous one is still on its way back to the pool), so NTLM requests
//! go through this: hyper's connection-level API over TCP (and rustls with
//! the platform's trust store for https), one request at a time.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use reqwest::{
    StatusCode, Url,
    header::{HOST, HeaderMap, HeaderName, HeaderValue},
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    time::timeout,
};

use crate::error::EwsError;

/// A kept-alive connection (and whether it is authenticated yet).
#[derive(Debug)]
pub(crate) struct Connection {
    send: SendRequest<Full<Bytes>>,
    task: tokio::task::JoinHandle<()>,
    pub(crate) authenticated: bool,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, EwsError> {
    use rustls_platform_verifier::ConfigVerifierExt as _;
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            rustls::ClientConfig::with_platform_verifier()
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| EwsError::InvalidConfig {
            field: "endpoint",
            reason: format!("TLS set-up: {e}"),
        })
}

async fn handshake<S>(io: S, endpoint: &str) -> Result<Connection, EwsError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| EwsError::Unreachable {
            endpoint: endpoint.to_owned(),
            message: format!("HTTP handshake: {e}"),
        })?;
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(Connection {
        send,
        task,
        authenticated: false,
    })
}

impl Connection {
    /// Opens a connection to `url`'s host (TLS for https).
    pub(crate) async fn open(url: &Url, connect_timeout: Duration) -> Result<Connection, EwsError> {
        let endpoint = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
        let host = url.host_str().ok_or_else(|| EwsError::InvalidConfig {
            field: "endpoint",
            reason: "no host".into(),
        })?;
        let port = url.port_or_known_default().unwrap_or(443);
        let unreachable = |message: String| EwsError::Unreachable {
            endpoint: endpoint.clone(),
            message,
        };
        let tcp = timeout(
            connect_timeout,
            TcpStream::connect((host.trim_matches(['[', ']']), port)),
        )
        .await
        .map_err(|_| unreachable(format!("no connection within {connect_timeout:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        if url.scheme() != "https" {
            return handshake(tcp, &endpoint).await;
        }
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| EwsError::InvalidConfig {
                    field: "endpoint",
                    reason: format!("host {host:?}: {e}"),
                })?;
        let tls = tokio_rustls::TlsConnector::from(tls_config()?);
        let stream = timeout(connect_timeout, tls.connect(name, tcp))
            .await
            .map_err(|_| unreachable(format!("no TLS handshake within {connect_timeout:?}")))?
            .map_err(|e| EwsError::Tls {
                endpoint: endpoint.clone(),
                message: e.to_string(),
            })?;
        handshake(stream, &endpoint).await
    }

    /// Whether the server closed the connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.send.is_closed()
    }

    /// Sends one POST and reads the whole answer within `limit` bytes and
    /// `request_timeout`.
    pub(crate) async fn post(
        &mut self,
        url: &Url,
        headers: &HeaderMap,
        body: Bytes,
        operation: &'static str,
        request_timeout: Duration,
        limit: usize,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), EwsError> {
        let exchange = async {
            let mut path = url.path().to_owned();
            if let Some(q) = url.query() {
                path.push('?');
                path.push_str(q);
            }
            let mut req = hyper::Request::post(path)
                .body(Full::new(body))
                .map_err(|e| EwsError::Transport {
                    message: e.to_string(),
                })?;
            let host = match url.port() {
                Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
                None => url.host_str().unwrap_or("").to_owned(),
            };
            let h = req.headers_mut();
            h.insert(
                HOST,
                HeaderValue::from_str(&host).map_err(|e| EwsError::Transport {
                    message: e.to_string(),
                })?,
            );
            for (k, v) in headers {
                h.insert(HeaderName::from(k), v.clone());
            }
            self.send.ready().await.map_err(|e| EwsError::Transport {
                message: format!("connection closed: {e}"),
            })?;
            let resp = self
                .send
                .send_request(req)
                .await
                .map_err(|e| EwsError::Transport {
                    message: e.to_string(),
                })?;
            let (parts, body) = resp.into_parts();
            if parts
                .headers
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok())
                .is_some_and(|l| l > limit)
            {
                return Err(EwsError::TooLarge { limit });
            }
            let bytes = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        EwsError::TooLarge { limit }
                    } else {
                        EwsError::Transport {
                            message: e.to_string(),
                        }
                    }
                })?
                .to_bytes();
            Ok((parts.status, parts.headers, bytes.to_vec()))
        };
        timeout(request_timeout, exchange)
            .await
            .map_err(|_| EwsError::Timeout {
                operation,
                after: request_timeout,
            })?
    }
}
