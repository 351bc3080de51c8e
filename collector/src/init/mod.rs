//! Wiring: everything that knows about the command line lives here; components get plain values.
//!
//! `config` (flags) and `config_file` (layering), one builder per component (`store`, `pipeline`,
//! `exporters`, `receivers`), `serve` (binding and serving every TCP listener), and `run`, which starts
//! them in order and stops them in the reverse order.

mod config;
mod config_file;
mod exporters;
mod pipeline;
mod query;
mod receivers;
mod run;
mod serve;
mod store;

pub use config::{parse_byte_size, Config};
pub use config_file::{load_config, load_from};
pub use run::{run, InitError};

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
