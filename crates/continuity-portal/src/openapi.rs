//! The JSON API described as an OpenAPI 3.1 document, kept in the
//! repository (`crates/continuity-portal/openapi.json`) and served by the
//! router at `api/openapi.json`. A test walks the router's routes against
//! it and parses its examples into the real types, so the two cannot drift.

use axum::{
    http::header,
    response::{IntoResponse, Response},
};

/// Where the router serves the document, relative to where it is nested.
pub(crate) const PATH: &str = "/api/openapi.json";

/// The OpenAPI 3.1 document of the portal's JSON API (what
/// `api/openapi.json` serves).
pub const OPENAPI: &str = include_str!("../openapi.json");

pub(crate) async fn document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[cfg(test)]
mod tests;
