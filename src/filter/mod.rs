//! The proxy-wasm glue: thin by design. The root context owns the
//! configuration, the exporter and the tick; HTTP contexts start and finish
//! spans; [`wasm_host::WasmHost`] is the `Host` over hostcalls.

mod cel;
mod header_map;
mod http;
mod root;
mod wasm_host;

use proxy_wasm::traits::RootContext;
use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(root::Root::default()) });
}}
