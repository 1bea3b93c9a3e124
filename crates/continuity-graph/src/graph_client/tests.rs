use super::answer::{excerpt, retry_after};
use super::*;
use crate::app_registration::Authority;
use crate::error::GraphInnerError;

fn answer(status: u16, headers: &[(&'static str, &str)], body: &str) -> Answer {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, v.parse().unwrap());
    }
    Answer {
        status,
        headers: h,
        body: body.as_bytes().to_vec(),
    }
}

fn now() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

#[test]
fn graph_error_bodies_are_kept() {
    let a = answer(
        403,
        &[("request-id", "from-header")],
        r#"{"error":{"code":"ErrorAccessDenied","message":"Access to OData is disabled.","innerError":{"request-id":"2f038156","client-request-id":"c-1","date":"2026-03-02T08:00:00"}}}"#,
    );
    match graph_error(GraphOperation::ListMessages, &a, now()) {
        GraphError::Graph {
            status: 403,
            code,
            message,
            inner,
            ..
        } => {
            assert_eq!(code, "ErrorAccessDenied");
            assert_eq!(message, "Access to OData is disabled.");
            assert_eq!(
                *inner,
                GraphInnerError {
                    code: None,
                    request_id: Some("2f038156".into()),
                    client_request_id: Some("c-1".into()),
                    date: Some("2026-03-02T08:00:00".into()),
                }
            );
        }
        other => panic!("{other:?}"),
    }
    // Without innerError, the header's request id is kept.
    let a = answer(
        429,
        &[("request-id", "r-9"), ("retry-after", "7")],
        r#"{"error":{"code":"ApplicationThrottled","message":"Application is over its MailboxConcurrency limit."}}"#,
    );
    let e = graph_error(GraphOperation::SendMail, &a, now());
    assert!(e.is_throttling() && e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert!(e.to_string().contains("[request-id r-9]"), "{e}");
}

#[test]
fn other_bodies_are_described() {
    let a = answer(
        502,
        &[("content-type", "text/html")],
        "<html>\n<body>  Bad   Gateway</body></html>",
    );
    let e = graph_error(GraphOperation::ListMessages, &a, now());
    match &e {
        GraphError::GraphHttp {
            status: 502,
            excerpt,
            content_type,
            ..
        } => {
            assert_eq!(excerpt, "<html> <body> Bad Gateway</body></html>");
            assert_eq!(content_type.as_deref(), Some("text/html"));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.is_retryable() && !e.is_throttling());
    assert_eq!(excerpt("x".repeat(500).as_bytes()).chars().count(), 201);
}

#[test]
fn retry_after_in_seconds_or_as_a_date() {
    let h = answer(503, &[("retry-after", "Mon, 02 Mar 2026 08:00:30 GMT")], "").headers;
    assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(30)));
    let h = answer(503, &[("retry-after", " 12 ")], "").headers;
    assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(12)));
    let h = answer(503, &[("retry-after", "soon")], "").headers;
    assert_eq!(retry_after(&h, now()), None);
}

#[test]
fn configuration_is_checked() {
    assert!(
        GraphConfig::new("https://graph.microsoft.com/v1.0")
            .validate()
            .is_ok()
    );
    for bad in [
        GraphConfig::new("http://graph.example/v1.0"),
        GraphConfig::new("not a url"),
        GraphConfig::new("https://graph.example/v1.0?x=1"),
        GraphConfig {
            page_size: 0,
            ..GraphConfig::new("https://graph.microsoft.com/v1.0")
        },
        GraphConfig {
            page_size: 1001,
            ..GraphConfig::new("https://graph.microsoft.com/v1.0")
        },
    ] {
        assert!(
            matches!(bad.validate(), Err(GraphError::InvalidConfig { .. })),
            "{bad:?}"
        );
    }
    let gov = GraphConfig::for_authority(&Authority::UsGovernment).unwrap();
    assert_eq!(gov.endpoint, "https://graph.microsoft.us/v1.0");
    assert_eq!(gov.delete_mode, DeleteMode::MoveToDeletedItems);
    let china = GraphConfig::for_authority(&Authority::China).unwrap();
    assert_eq!(
        china.endpoint,
        "https://microsoftgraph.chinacloudapi.cn/v1.0"
    );
    assert_eq!(
        GraphConfig::for_authority(&Authority::Public)
            .unwrap()
            .delete_mode,
        DeleteMode::Permanent
    );
    assert!(GraphConfig::for_authority(&Authority::Custom("http://x".into())).is_err());
}
