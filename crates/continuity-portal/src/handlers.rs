//! The request handlers: one flow for forms and JSON, rendered two ways.

use std::sync::Arc;

use axum::{
    Form, Json,
    extract::{
        Path, State,
        rejection::{FormRejection, JsonRejection, PathRejection},
    },
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use continuity_core::{
    Error as CoreError, Monitor,
    link::{LinkRejection, VerifiedLink},
    portal::{self, DURATION_PRESETS, PortalOutcome, PortalView},
    time_zone::TimeZone,
};
use serde_json::json;

use crate::{
    csrf::Csrf,
    html::Html,
    input::{self, ApiInput, FormInput, Input, Kind},
    pages,
};

/// The router's state.
#[derive(Debug)]
pub(crate) struct Portal {
    pub(crate) monitor: Arc<Monitor>,
    pub(crate) csrf: Csrf,
}

type St = State<Arc<Portal>>;

/// Why a request got no view or outcome.
enum Failure {
    /// The link was refused; its reason is written in the zone (the
    /// tenant's where the link tells it, see `Portal::link_failure`).
    Link(LinkRejection, TimeZone),
    Csrf,
    BadInput(String),
    NotFound(&'static str),
    Engine(CoreError),
    /// An outcome added to core after this crate was written.
    Unexpected(String),
}

const CSRF_MESSAGE: &str = "This form does not belong to this link (its CSRF token is missing or \
                            wrong). Open the link again and resubmit.";

fn link_status(reason: &LinkRejection) -> StatusCode {
    match reason {
        LinkRejection::Expired { .. } => StatusCode::GONE,
        LinkRejection::Malformed => StatusCode::NOT_FOUND,
        _ => StatusCode::FORBIDDEN,
    }
}

fn engine_status(e: &CoreError) -> (StatusCode, String) {
    match e {
        CoreError::UnknownTenant { .. } => (
            StatusCode::NOT_FOUND,
            "This organisation is not served by this portal.".to_owned(),
        ),
        e if e.is_retryable() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The portal cannot reach its store just now; nothing was changed. Try again shortly."
                .to_owned(),
        ),
        e => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("The portal failed: {e}"),
        ),
    }
}

fn page(status: StatusCode, title: &str, body: Html) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body.document(title),
    )
        .into_response()
}

fn failure_page(f: Failure) -> Response {
    match f {
        Failure::Link(reason, zone) => {
            let (title, h) = pages::link_refused(&reason, zone);
            page(link_status(&reason), title, h)
        }
        Failure::Csrf => page(
            StatusCode::FORBIDDEN,
            "Form not accepted",
            pages::message("Form not accepted", CSRF_MESSAGE),
        ),
        Failure::BadInput(msg) => page(
            StatusCode::BAD_REQUEST,
            "Please check the form",
            pages::message("Please check the form", &msg),
        ),
        Failure::NotFound(what) => page(
            StatusCode::NOT_FOUND,
            "Not found",
            pages::message("Not found", what),
        ),
        Failure::Unexpected(msg) => page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            pages::message("Something went wrong", &msg),
        ),
        Failure::Engine(e) => {
            let (status, msg) = engine_status(&e);
            page(
                status,
                "Something went wrong",
                pages::message("Something went wrong", &msg),
            )
        }
    }
}

fn failure_json(f: Failure) -> Response {
    let (status, body) = match f {
        Failure::Link(reason, zone) => (
            link_status(&reason),
            json!({"outcome": "link_refused", "message": reason.describe(zone), "reason": reason}),
        ),
        Failure::Csrf => (
            StatusCode::FORBIDDEN,
            json!({"outcome": "bad_csrf", "message": CSRF_MESSAGE}),
        ),
        Failure::BadInput(msg) => (
            StatusCode::BAD_REQUEST,
            json!({"outcome": "bad_input", "message": msg}),
        ),
        Failure::NotFound(what) => (
            StatusCode::NOT_FOUND,
            json!({"outcome": "not_found", "message": what}),
        ),
        Failure::Unexpected(msg) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"outcome": "error", "message": msg}),
        ),
        Failure::Engine(e) => {
            let (status, msg) = engine_status(&e);
            (status, json!({"outcome": "error", "message": msg}))
        }
    };
    (status, Json(body)).into_response()
}

const UNKNOWN_ACTION: &str = "There is no such action in the portal.";
const BAD_PATH: &str = "This address is not a portal page.";

impl Portal {
    /// A refused link, its reason in the tenant's zone when the link names
    /// the tenant trustworthily: an expired link's signature still holds,
    /// so it is verified as of just before it expired. Any other refusal
    /// has no time to write.
    fn link_failure(&self, token: &str, reason: LinkRejection) -> Failure {
        let zone = match &reason {
            LinkRejection::Expired { expired_at } => self.zone_of(self.monitor.verify_link(
                token,
                None,
                *expired_at - chrono::TimeDelta::seconds(1),
            )),
            _ => TimeZone::UTC,
        };
        Failure::Link(reason, zone)
    }

    /// The time zone of a verified link's tenant; UTC without one.
    fn zone_of(&self, verified: Result<VerifiedLink, CoreError>) -> TimeZone {
        verified
            .ok()
            .and_then(|link| self.monitor.tenant_config(&link.claims.tenant).ok())
            .map_or(TimeZone::UTC, |config| config.time_zone)
    }

    async fn open(&self, token: &str) -> Result<Box<PortalView>, Failure> {
        let now = self.monitor.clock().now();
        match portal::open(&self.monitor, token, None, now).await {
            Ok(PortalOutcome::Done(view)) => Ok(view),
            Ok(PortalOutcome::LinkRefused { reason }) => Err(self.link_failure(token, reason)),
            Ok(other) => Err(Failure::Unexpected(format!(
                "unexpected outcome of opening a link: {other:?}"
            ))),
            Err(e) => Err(Failure::Engine(e)),
        }
    }

    /// Checks the CSRF token and the input, then acts.
    async fn perform(
        &self,
        token: &str,
        action: &str,
        csrf: Option<&str>,
        input: impl FnOnce(TimeZone) -> Result<Input, String>,
    ) -> Result<(Kind, PortalOutcome), Failure> {
        let kind = Kind::parse(action).ok_or(Failure::NotFound(UNKNOWN_ACTION))?;
        let now = self.monitor.clock().now();
        let verified = self.monitor.verify_link(token, None, now);
        if !csrf.is_some_and(|c| self.csrf.check(token, c)) {
            // A dead link says so rather than blaming the form.
            return Err(match verified {
                Err(CoreError::Link { reason }) => self.link_failure(token, reason),
                _ => Failure::Csrf,
            });
        }
        // Typed times are the tenant's wall-clock times. A link that fails
        // here is refused by `act` below with its reason, so UTC stands in.
        let zone = self.zone_of(verified);
        let input = input(zone).map_err(Failure::BadInput)?;
        let action = input::action(kind, &input).map_err(Failure::BadInput)?;
        match portal::act(&self.monitor, token, action, input.version, now).await {
            Ok(PortalOutcome::LinkRefused { reason }) => Err(self.link_failure(token, reason)),
            Ok(outcome) => Ok((kind, outcome)),
            Err(e) => Err(Failure::Engine(e)),
        }
    }
}

pub(crate) async fn status_page(
    State(p): St,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(token)) = path else {
        return failure_page(Failure::NotFound(BAD_PATH));
    };
    match p.open(&token).await {
        Ok(v) => {
            let mut h = Html::new();
            pages::view(&mut h, &v, &format!("{token}/"));
            page(StatusCode::OK, &v.organisation, h)
        }
        Err(f) => failure_page(f),
    }
}

pub(crate) async fn form_page(
    State(p): St,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Response {
    let Ok(Path((token, action))) = path else {
        return failure_page(Failure::NotFound(BAD_PATH));
    };
    let Some(kind) = Kind::parse(&action) else {
        return failure_page(Failure::NotFound(UNKNOWN_ACTION));
    };
    match p.open(&token).await {
        Ok(v) => {
            let mut h = Html::new();
            pages::form(&mut h, &v, kind, &token, &p.csrf.token(&token));
            page(StatusCode::OK, kind.title(), h)
        }
        Err(f) => failure_page(f),
    }
}

pub(crate) async fn act_page(
    State(p): St,
    path: Result<Path<(String, String)>, PathRejection>,
    form: Result<Form<FormInput>, FormRejection>,
) -> Response {
    let Ok(Path((token, action))) = path else {
        return failure_page(Failure::NotFound(BAD_PATH));
    };
    let form = match form {
        Ok(Form(form)) => form,
        Err(rejection) => {
            return page(
                rejection.status(),
                "Form not accepted",
                pages::message("Form not accepted", &rejection.body_text()),
            );
        }
    };
    match p
        .perform(&token, &action, form.csrf.as_deref(), |zone| {
            form.check(zone)
        })
        .await
    {
        Ok((kind, outcome)) => outcome_page(kind, &token, outcome),
        Err(f) => failure_page(f),
    }
}

fn outcome_page(kind: Kind, token: &str, outcome: PortalOutcome) -> Response {
    match outcome {
        PortalOutcome::Done(v) => {
            let mut h = Html::new();
            h.raw("<h1>Done</h1><p class=\"note\">")
                .text(kind.done())
                .raw("</p>");
            pages::view(&mut h, &v, "");
            page(StatusCode::OK, "Done", h)
        }
        PortalOutcome::Refused { reason, view } => page(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Not possible",
            pages::refused(&view, &reason, token),
        ),
        PortalOutcome::Conflict { view } => page(
            StatusCode::CONFLICT,
            "The state changed",
            pages::conflict(&view),
        ),
        PortalOutcome::OutOfRange { .. } => failure_page(Failure::BadInput(
            "That time is too far away to be represented.".to_owned(),
        )),
        PortalOutcome::LinkRefused { reason } => failure_page(Failure::Link(reason, TimeZone::UTC)),
        other => failure_page(Failure::Unexpected(format!(
            "unexpected outcome: {other:?}"
        ))),
    }
}

pub(crate) async fn api_status(
    State(p): St,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(token)) = path else {
        return failure_json(Failure::NotFound(BAD_PATH));
    };
    match p.open(&token).await {
        Ok(v) => Json(json!({
            "view": v,
            "csrf": p.csrf.token(&token),
            "presets": DURATION_PRESETS,
        }))
        .into_response(),
        Err(f) => failure_json(f),
    }
}

pub(crate) async fn api_act(
    State(p): St,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<ApiInput>, JsonRejection>,
) -> Response {
    let Ok(Path((token, action))) = path else {
        return failure_json(Failure::NotFound(BAD_PATH));
    };
    let body = match body {
        Ok(Json(body)) => body,
        Err(rejection) => {
            return (
                rejection.status(),
                Json(json!({"outcome": "bad_input", "message": rejection.body_text()})),
            )
                .into_response();
        }
    };
    let input = Input::from(&body);
    match p
        .perform(&token, &action, Some(&body.csrf), |_| Ok(input))
        .await
    {
        Ok((_, outcome)) => outcome_json(outcome),
        Err(f) => failure_json(f),
    }
}

fn outcome_json(outcome: PortalOutcome) -> Response {
    let (status, body) = match outcome {
        PortalOutcome::Done(view) => (
            StatusCode::OK,
            json!({"outcome": "done", "message": "done", "view": view}),
        ),
        PortalOutcome::Refused { reason, view } => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"outcome": "refused", "message": reason.describe(view.time_zone), "reason": reason, "view": view}),
        ),
        PortalOutcome::Conflict { view } => (
            StatusCode::CONFLICT,
            json!({"outcome": "conflict", "message": "the state changed, here it is now; nothing was done", "view": view}),
        ),
        PortalOutcome::OutOfRange { .. } => {
            return failure_json(Failure::BadInput(
                "that time is too far away to be represented".to_owned(),
            ));
        }
        PortalOutcome::LinkRefused { reason } => {
            return failure_json(Failure::Link(reason, TimeZone::UTC));
        }
        other => {
            return failure_json(Failure::Unexpected(format!(
                "unexpected outcome: {other:?}"
            )));
        }
    };
    (status, Json(body)).into_response()
}

pub(crate) async fn not_found() -> Response {
    failure_page(Failure::NotFound(BAD_PATH))
}

pub(crate) async fn method_not_allowed() -> Response {
    page(
        StatusCode::METHOD_NOT_ALLOWED,
        "Not allowed",
        pages::message("Not allowed", "This page cannot be used this way."),
    )
}
