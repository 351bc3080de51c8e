//! Benchmark floor "headers": the least a tracing filter must do on every
//! request. At the request headers it reads the whole header map in one
//! hostcall (as bytes, like meshtrace) and writes one header (a
//! traceparent-sized value); when the stream is logged it reads the response
//! code. No parsing, no ids, no export: what is left over this floor in a
//! tracer is the tracer's own cost. `make bench` runs it beside meshtrace.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

/// The header written, and a value as long as a W3C traceparent.
const HEADER: &str = "traceparent";
const VALUE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request;

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        // black_box: the copy must not be optimised away.
        std::hint::black_box(self.get_http_request_headers_bytes());
        self.set_http_request_header(HEADER, Some(VALUE));
        Action::Continue
    }

    fn on_log(&mut self) {
        std::hint::black_box(self.get_property(vec!["response", "code"]));
    }
}
