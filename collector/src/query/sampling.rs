//! `GET /api/sampling?service=NAME` and `GET /sampling?service=NAME`: the Jaeger remote sampling strategy
//! for a service. Not behind the query token: SDKs and the meshtrace filter poll it, and strategies are not
//! secret.

use axum::extract::{RawQuery, State};
use axum::response::Response;

use super::QueryContext;
use crate::sampling::http::strategy_response;

pub async fn strategy(State(ctx): State<QueryContext>, RawQuery(raw): RawQuery) -> Response {
    strategy_response(&ctx.sampling, raw.as_deref())
}
