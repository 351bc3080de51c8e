//! Benchmark probe: the "null" floor plus hostcalls repeated on every request,
//! so that `bench/hostcall_costs.py` can price each kind of hostcall in a real
//! Envoy (the sidecar's instructions with N calls, less the null floor's,
//! over N).
//!
//! The plugin configuration is one operation a line, `PHASE OP ARG COUNT`:
//! PHASE is `request` (at the request headers) or `log` (when the stream is
//! logged); OP is one of
//!
//! - `headers -`: read the whole request header map;
//! - `header NAME`: read one request header;
//! - `set NAME`: replace one request header (a traceparent-sized value);
//! - `property a.b.c`: read a property;
//! - `now -`: read the clock;
//! - `shared-get KEY`, `shared-set KEY`: read, or write, a shared value of
//!   200 bytes (a link bucket's size; `probe` is set at configuration);
//! - `expr EXPRESSION`: evaluate a CEL expression (Envoy's `expr_evaluate`
//!   foreign function), compiled once at configuration.
//!
//! A line that does not parse is logged and skipped.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

const VALUE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const SHARED: [u8; 200] = [7; 200];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Request,
    Log,
}

enum Op {
    Headers,
    Header(String),
    Set(String),
    Property(Vec<String>),
    Now,
    SharedGet(String),
    SharedSet(String),
    /// The token `expr_create` returned.
    Expr([u8; 4]),
}

#[derive(Default)]
struct Root {
    ops: Rc<RefCell<Vec<(Phase, Op, u32)>>>,
}

fn parse(line: &str) -> Option<(Phase, Op, u32)> {
    let line = line.trim();
    let (phase, rest) = line.split_once(' ')?;
    let (op, rest) = rest.split_once(' ')?;
    let (arg, count) = rest.rsplit_once(' ')?;
    let phase = match phase {
        "request" => Phase::Request,
        "log" => Phase::Log,
        _ => return None,
    };
    let op = match op {
        "headers" => Op::Headers,
        "header" => Op::Header(arg.to_string()),
        "set" => Op::Set(arg.to_string()),
        "property" => Op::Property(arg.split('.').map(String::from).collect()),
        "now" => Op::Now,
        "shared-get" => Op::SharedGet(arg.to_string()),
        "shared-set" => Op::SharedSet(arg.to_string()),
        "expr" => {
            let token = hostcalls::call_foreign_function("expr_create", Some(arg.as_bytes()))
                .ok()
                .flatten()?;
            Op::Expr(token.get(..4)?.try_into().ok()?)
        }
        _ => return None,
    };
    Some((phase, op, count.parse().ok()?))
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        let mut ops = self.ops.borrow_mut();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match parse(line) {
                Some(op) => ops.push(op),
                None => log::warn!("probe: cannot use `{line}`"),
            }
        }
        let _ = hostcalls::set_shared_data("probe", Some(&SHARED), None);
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            ops: self.ops.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Request {
    ops: Rc<RefCell<Vec<(Phase, Op, u32)>>>,
}

impl Request {
    fn run(&self, phase: Phase) {
        for (p, op, count) in self.ops.borrow().iter() {
            if *p != phase {
                continue;
            }
            for _ in 0..*count {
                run(op);
            }
        }
    }
}

fn run(op: &Op) {
    use std::hint::black_box;
    match op {
        Op::Headers => {
            black_box(hostcalls::get_map_bytes(MapType::HttpRequestHeaders).ok());
        }
        Op::Header(name) => {
            black_box(hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name).ok());
        }
        Op::Set(name) => {
            black_box(
                hostcalls::set_map_value(MapType::HttpRequestHeaders, name, Some(VALUE)).ok(),
            );
        }
        Op::Property(path) => {
            black_box(hostcalls::get_property(path.iter().map(String::as_str).collect()).ok());
        }
        Op::Now => {
            black_box(hostcalls::get_current_time().ok());
        }
        Op::SharedGet(key) => {
            black_box(hostcalls::get_shared_data(key).ok());
        }
        Op::SharedSet(key) => {
            black_box(hostcalls::set_shared_data(key, Some(&SHARED), None).ok());
        }
        Op::Expr(token) => {
            black_box(hostcalls::call_foreign_function("expr_evaluate", Some(token)).ok());
        }
    }
}

impl Context for Request {}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        self.run(Phase::Request);
        Action::Continue
    }

    fn on_log(&mut self) {
        self.run(Phase::Log);
    }
}
