//! The HTTP context: one per request. It starts the span at the request
//! headers and hands the finished span to the exporter at `on_log`.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use super::root::Shared;
use crate::otlp;
use crate::tracer::ActiveSpan;

pub struct RequestContext {
    shared: Option<Rc<Shared>>,
    span: Option<ActiveSpan>,
}

impl RequestContext {
    pub fn new(shared: Option<Rc<Shared>>) -> Self {
        RequestContext { shared, span: None }
    }
}

impl Context for RequestContext {}

impl HttpContext for RequestContext {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let Some(shared) = &self.shared {
            self.span = Some(shared.tracer.start(&shared.host));
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(shared), Some(span)) = (&self.shared, self.span.take()) else {
            return;
        };
        if let Some(finished) = shared.tracer.finish(span, &shared.host) {
            shared
                .exporter
                .borrow_mut()
                .push(otlp::encode_span(&finished), &shared.host);
        }
    }
}
