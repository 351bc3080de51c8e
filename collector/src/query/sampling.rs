//! `GET /api/sampling?service=NAME` and `GET /sampling?service=NAME`: the Jaeger remote sampling strategy
//! for a service. Not behind the query token: SDKs and the meshtrace filter poll it, and strategies are not
//! secret.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::QueryContext;

pub async fn strategy(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    let service = form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "service")
        .map(|(_, v)| v.into_owned())
        .last();
    let Some(service) = service.filter(|s| !s.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            "'service' parameter must be provided once\n",
        )
            .into_response();
    };
    Json(ctx.sampling.strategy(&service)).into_response()
}
