//! The document against the router: every JSON route is documented and
//! every documented operation answers as documented; the examples parse
//! into the real input type and have the shape of real answers.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use axum::{
    Router,
    body::{Body, to_bytes},
    http::{Method, Request, StatusCode, header},
};
use chrono::{DateTime, Utc};
use continuity_core::{
    ManualClock, Monitor, TenantId,
    config::{ChannelKind, Recipient, TenantConfig},
    link::{LinkClaims, LinkKey, LinkSigner},
    testing::RecordingNotifier,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::OPENAPI;
use crate::{PortalOptions, input::ApiInput, input::Kind, router};

fn t0() -> DateTime<Utc> {
    "2026-03-02T08:00:00Z".parse().unwrap()
}

struct Fixture {
    app: Router,
    link: String,
    expired: String,
}

async fn fixture() -> Fixture {
    let monitor = Arc::new(
        Monitor::builder()
            .in_memory_store()
            .clock(Arc::new(ManualClock::new(t0())))
            .notifier(Arc::new(RecordingNotifier::new(ChannelKind::Sms)))
            .link_signer(LinkSigner::new(LinkKey::new("k1", [1u8; 32]).unwrap()))
            .portal_url("https://ops.example.net/continuity/")
            .build()
            .unwrap(),
    );
    let acme = TenantId::new("acme").unwrap();
    let config = continuity_core::testing::absolute_thresholds(
        TenantConfig::new(
            acme.clone(),
            vec![Recipient::new("ops", ChannelKind::Sms, "+15550100")],
        ),
        3,
    );
    monitor.register_tenant(config).await.unwrap();
    let claims = LinkClaims {
        tenant: acme,
        alert_id: 1,
        recipient: "ops".into(),
    };
    let link = monitor.link_signer().sign(&claims, t0()).unwrap();
    let expired = monitor
        .link_signer()
        .sign(&claims, t0() - chrono::TimeDelta::days(2))
        .unwrap();
    let app = router(monitor, PortalOptions::new([3u8; 32]).unwrap());
    Fixture { app, link, expired }
}

struct Answer {
    status: StatusCode,
    json: Option<Value>,
}

async fn send(app: &Router, method: Method, path: &str, body: Option<Value>) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    let body = match body {
        Some(b) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Answer {
        status,
        json: is_json.then(|| serde_json::from_slice(&bytes).expect("JSON answers parse")),
    }
}

/// Real answers of each documented kind, by the name their example has.
async fn real_answers(f: &Fixture) -> BTreeMap<&'static str, Value> {
    let mut out = BTreeMap::new();
    let status = send(&f.app, Method::GET, &format!("/api/{}", f.link), None).await;
    let status = status.json.unwrap();
    let csrf = status["csrf"].clone();
    let version = status["view"]["version"].clone();
    out.insert("status", status);
    let act = |action: &str, body: Value| {
        let path = format!("/api/{}/{action}", f.link);
        let app = f.app.clone();
        async move {
            send(&app, Method::POST, &path, Some(body))
                .await
                .json
                .unwrap()
        }
    };
    out.insert(
        "done",
        act(
            "start",
            json!({"csrf": csrf, "version": version, "minutes": 60}),
        )
        .await,
    );
    out.insert(
        "conflict",
        act(
            "suspend",
            json!({"csrf": csrf, "version": version, "minutes": 60}),
        )
        .await,
    );
    out.insert(
        "refused",
        act("start", json!({"csrf": csrf, "minutes": 60})).await,
    );
    out.insert(
        "bad_input",
        act("suspend", json!({"csrf": csrf, "minutes": 0})).await,
    );
    out.insert("bad_csrf", act("end", json!({"csrf": "00"})).await);
    out.insert(
        "link_refused",
        send(&f.app, Method::GET, &format!("/api/{}", f.expired), None)
            .await
            .json
            .unwrap(),
    );
    out
}

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi.json is JSON")
}

/// The documented operations: (method, path template).
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// The concrete paths of a template: the fixture's link, every documented
/// action (and, with `extra`, an action the router does not know).
fn instances(doc: &Value, template: &str, link: &str, extra: bool) -> Vec<String> {
    let with_link = template.replace("{link}", link);
    if !template.contains("{action}") {
        return vec![with_link];
    }
    let actions = doc["paths"][template]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "action")
        .expect("the action parameter")["schema"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .chain(extra.then(|| "nope".to_owned()))
        .collect::<Vec<_>>();
    actions
        .into_iter()
        .map(|a| with_link.replace("{action}", &a))
        .collect()
}

fn body_for(method: &Method, csrf: &Value) -> Option<Value> {
    (method == Method::POST)
        .then(|| json!({"csrf": csrf, "minutes": 60, "start": "2026-03-03T08:00:00Z"}))
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_served_by_the_router() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let f = fixture().await;
    let served = send(&f.app, Method::GET, super::PATH, None).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.json, Some(doc));
}

#[tokio::test]
async fn every_json_route_is_documented_and_answers_only_as_documented() {
    let doc = document();
    let documented = operations(&doc);
    let f = fixture().await;
    let csrf = send(&f.app, Method::GET, &format!("/api/{}", f.link), None)
        .await
        .json
        .unwrap()["csrf"]
        .clone();

    // The router's side: every route it answers with JSON (anything but
    // "no such route" or "not this method") is in the document. The
    // templates are every path shape the router could route.
    let mut templates: Vec<&str> = vec![
        "/api/openapi.json",
        "/api/{link}",
        "/api/{link}/{action}",
        "/{link}",
        "/{link}/{action}",
        "/api",
        "/api/{link}/{action}/more",
    ];
    templates.sort_unstable();
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.path()).collect();
    for template in templates {
        let paths: Vec<String> = if template.contains("{action}") {
            kinds
                .iter()
                .chain(&["nope"])
                .map(|a| template.replace("{link}", &f.link).replace("{action}", a))
                .collect()
        } else {
            vec![template.replace("{link}", &f.link)]
        };
        for path in paths {
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ] {
                // A body with every method: a route that reads one answers.
                let a = send(
                    &f.app,
                    method.clone(),
                    &path,
                    body_for(&Method::POST, &csrf),
                )
                .await;
                if a.json.is_some()
                    && a.status != StatusCode::NOT_FOUND
                    && a.status != StatusCode::METHOD_NOT_ALLOWED
                {
                    assert!(
                        documented.contains(&(method.to_string(), template.to_owned())),
                        "{method} {template} answers JSON ({}) but is not in openapi.json",
                        a.status
                    );
                }
            }
        }
    }

    // The document's side: every operation, for every documented action,
    // answers JSON with a status it documents.
    for (method, template) in &documented {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let op = &doc["paths"][template.as_str()][method.as_str().to_lowercase()];
        for path in instances(&doc, template, &f.link, false) {
            let a = send(&f.app, method.clone(), &path, body_for(&method, &csrf)).await;
            assert!(a.json.is_some(), "{method} {path}: not JSON");
            assert!(
                op["responses"].get(a.status.as_str()).is_some(),
                "{method} {path} answered {}, not documented",
                a.status
            );
        }
    }
    // An action the router does not know is not documented either.
    let nope = instances(&doc, "/api/{link}/{action}", &f.link, true);
    let nope = nope.last().unwrap();
    let a = send(&f.app, Method::POST, nope, body_for(&Method::POST, &csrf)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

/// Every key path of a JSON value, arrays by their first element.
fn shape(v: &Value, at: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{at}.{k}");
                out.insert(p.clone());
                shape(v, &p, out);
            }
        }
        Value::Array(a) => {
            if let Some(first) = a.first() {
                shape(first, &format!("{at}[]"), out);
            }
        }
        _ => {}
    }
}

fn shape_of(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    shape(v, "", &mut out);
    out
}

/// Every `examples` map in the document, with where it is.
fn examples<'a>(
    v: &'a Value,
    at: String,
    out: &mut Vec<(String, &'a serde_json::Map<String, Value>)>,
) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            let here = format!("{at}/{k}");
            match (k.as_str(), child) {
                ("examples", Value::Object(ex)) => out.push((here, ex)),
                _ => examples(child, here, out),
            }
        }
    }
}

#[tokio::test]
async fn examples_parse_into_the_input_type_and_have_the_shape_of_real_answers() {
    let doc = document();
    let f = fixture().await;
    let real = real_answers(&f).await;
    let mut found = Vec::new();
    examples(&doc, String::new(), &mut found);
    let (mut requests, mut responses) = (0, 0);
    for (at, map) in found {
        for (name, example) in map {
            let value = &example["value"];
            if at.contains("requestBody") {
                serde_json::from_value::<ApiInput>(value.clone())
                    .unwrap_or_else(|e| panic!("{at}/{name} is not an action input: {e}"));
                requests += 1;
            } else {
                let answer = real.get(name.as_str()).unwrap_or_else(|| {
                    panic!("{at}/{name}: no real answer of that name to compare")
                });
                assert_eq!(
                    shape_of(value),
                    shape_of(answer),
                    "{at}/{name} has not the shape of the router's answer: {answer:#}"
                );
                assert_eq!(value.get("outcome"), answer.get("outcome"), "{at}/{name}");
                responses += 1;
            }
        }
    }
    assert!(requests >= 4 && responses >= 7, "{requests} {responses}");
    // A body with a field the input does not have is refused, as documented
    // (`additionalProperties: false`).
    assert!(serde_json::from_value::<ApiInput>(json!({"csrf": "x", "hours": 1})).is_err());
    assert_eq!(
        doc["components"]["schemas"]["ActionInput"]["additionalProperties"],
        false
    );
}
