//! Wiring: everything that knows about the command line lives here; components get plain values.

mod config;
mod config_file;
mod run;

pub use config::{parse_byte_size, Config};
pub use config_file::load_config;
pub use run::{run, InitError};
