//! Command-line flags. Every flag has a `MESHTRACE_*` environment variable; a config file (`--config`)
//! supplies values that neither a flag nor the environment set (`config_file.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::duration::parse_go_duration;
use crate::exporters::ExporterConfig;
use crate::tail_sampling::TailSamplingConfig;
use crate::telemetry::LogFormat;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "meshtrace-collector",
    version,
    about,
    args_override_self = true
)]
pub struct Config {
    /// TOML file with default values for the flags below (keys are flag names, e.g. `data-dir = "/var/lib/meshtrace"`).
    #[arg(long, env = "MESHTRACE_CONFIG")]
    pub config: Option<PathBuf>,

    /// OTLP/HTTP receiver (POST /v1/traces).
    #[arg(
        long,
        env = "MESHTRACE_OTLP_HTTP_ADDR",
        default_value = "127.0.0.1:4318"
    )]
    pub otlp_http_addr: SocketAddr,

    /// OTLP/gRPC receiver.
    #[arg(
        long,
        env = "MESHTRACE_OTLP_GRPC_ADDR",
        default_value = "127.0.0.1:4317"
    )]
    pub otlp_grpc_addr: SocketAddr,

    /// Zipkin receiver (POST /api/v2/spans JSON or protobuf, /api/v1/spans JSON).
    #[arg(long, env = "MESHTRACE_ZIPKIN_ADDR", default_value = "127.0.0.1:9411")]
    pub zipkin_addr: SocketAddr,

    /// Turns on the four Jaeger receivers at Jaeger's ports on 127.0.0.1 (6831, 6832, 14268, 14250),
    /// unless their own flags say otherwise.
    #[arg(long, env = "MESHTRACE_JAEGER_RECEIVERS", default_value_t = false, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub jaeger_receivers: bool,

    /// Jaeger agent UDP, thrift compact (`Agent.emitBatch`, Jaeger's 6831); off unless given.
    #[arg(long, env = "MESHTRACE_JAEGER_COMPACT_ADDR")]
    pub jaeger_compact_addr: Option<SocketAddr>,

    /// Jaeger agent UDP, thrift binary (Jaeger's 6832); off unless given.
    #[arg(long, env = "MESHTRACE_JAEGER_BINARY_ADDR")]
    pub jaeger_binary_addr: Option<SocketAddr>,

    /// Jaeger collector HTTP, POST /api/traces with thrift (Jaeger's 14268); off unless given.
    #[arg(long, env = "MESHTRACE_JAEGER_HTTP_ADDR")]
    pub jaeger_http_addr: Option<SocketAddr>,

    /// Jaeger collector gRPC, api_v2 CollectorService/PostSpans (Jaeger's 14250); off unless given.
    #[arg(long, env = "MESHTRACE_JAEGER_GRPC_ADDR")]
    pub jaeger_grpc_addr: Option<SocketAddr>,

    /// The Jaeger agent's sampling port: GET /sampling?service= and /?service= (Jaeger's 5778).
    #[arg(
        long,
        env = "MESHTRACE_SAMPLING_ADDR",
        default_value = "127.0.0.1:5778"
    )]
    pub sampling_addr: SocketAddr,

    /// PEM certificate chain: with `--tls-key-file`, every TCP listener speaks TLS only.
    #[arg(long, env = "MESHTRACE_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of `--tls-cert-file`.
    #[arg(long, env = "MESHTRACE_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,

    /// PEM CA certificates: clients must present a certificate they signed (mTLS).
    #[arg(long, env = "MESHTRACE_TLS_CLIENT_CA_FILE", requires = "tls_cert_file")]
    pub tls_client_ca_file: Option<PathBuf>,

    /// How often the TLS files are checked for changes (a change is loaded without a restart).
    #[arg(long, env = "MESHTRACE_TLS_RELOAD_INTERVAL", default_value = "10s", value_parser = parse_go_duration)]
    pub tls_reload_interval: Duration,

    /// Query API (Jaeger-compatible), /healthz, /readyz and /metrics.
    #[arg(long, env = "MESHTRACE_HTTP_ADDR", default_value = "127.0.0.1:16686")]
    pub http_addr: SocketAddr,

    /// Grafana Tempo's HTTP API (`/api/traces/{id}`, `/api/search` with TraceQL, tags), Tempo's port.
    #[arg(long, env = "MESHTRACE_TEMPO_ADDR", default_value = "127.0.0.1:3200")]
    pub tempo_addr: SocketAddr,

    /// Directory of the embedded store.
    #[arg(long, env = "MESHTRACE_DATA_DIR", default_value = "./meshtrace-data")]
    pub data_dir: PathBuf,

    /// Delete traces older than this (Go duration, e.g. 72h; 0 keeps them forever).
    #[arg(long, env = "MESHTRACE_RETENTION_MAX_AGE", default_value = "72h", value_parser = parse_go_duration)]
    pub retention_max_age: Duration,

    /// Keep traces with an error span this long instead (Go duration).
    #[arg(long, env = "MESHTRACE_RETENTION_ERROR_MAX_AGE", value_parser = parse_go_duration)]
    pub retention_error_max_age: Option<Duration>,

    /// Delete the oldest traces while the store holds more than this (e.g. 10GiB; 0: no limit).
    #[arg(long, env = "MESHTRACE_RETENTION_MAX_BYTES", default_value = "10GiB", value_parser = parse_byte_size)]
    pub retention_max_bytes: u64,

    /// How often retention runs (Go duration).
    #[arg(long, env = "MESHTRACE_RETENTION_INTERVAL", default_value = "60s", value_parser = parse_go_duration)]
    pub retention_interval: Duration,

    /// Largest request body after decompression (larger: 413).
    #[arg(long, env = "MESHTRACE_MAX_BODY_BYTES", default_value = "20MiB", value_parser = parse_byte_size)]
    pub max_body_bytes: u64,

    /// Spans waiting for the store before receivers answer 429 / UNAVAILABLE.
    #[arg(long, env = "MESHTRACE_QUEUE_MAX_SPANS", default_value_t = 100_000)]
    pub queue_max_spans: usize,

    /// Requests waiting for the store before receivers answer 429 / UNAVAILABLE.
    #[arg(long, env = "MESHTRACE_QUEUE_MAX_REQUESTS", default_value_t = 1024)]
    pub queue_max_requests: usize,

    /// Page cache of the store.
    #[arg(long, env = "MESHTRACE_STORE_CACHE_BYTES", default_value = "64MiB", value_parser = parse_byte_size)]
    pub store_cache_bytes: u64,

    /// Memory the store's memtables may hold before commits wait for them to be flushed.
    #[arg(long, env = "MESHTRACE_STORE_WRITE_BUFFER_BYTES", default_value = "64MiB", value_parser = parse_write_buffer)]
    pub store_write_buffer_bytes: u64,

    /// File holding the bearer token senders must present (none: no token required).
    #[arg(long, env = "MESHTRACE_INGEST_TOKEN_FILE")]
    pub ingest_token_file: Option<PathBuf>,

    /// File holding the bearer token the query API requires (none: no token required).
    #[arg(long, env = "MESHTRACE_QUERY_TOKEN_FILE")]
    pub query_token_file: Option<PathBuf>,

    /// Log format.
    #[arg(long, env = "MESHTRACE_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,

    /// Log filter (`info`, `debug`, `meshtrace_collector=debug,info`, ...).
    #[arg(long, env = "MESHTRACE_LOG", default_value = "info")]
    pub log_level: String,

    /// Distinct (service, operation, kind) series of the span metrics; past this, `__overflow__`.
    #[arg(
        long,
        env = "MESHTRACE_SPAN_METRICS_MAX_SERIES",
        default_value_t = 10_000
    )]
    pub span_metrics_max_series: usize,

    /// How long a span waits in memory for its service-graph partner (Go duration).
    #[arg(long, env = "MESHTRACE_SERVICE_GRAPH_WAIT", default_value = "10s", value_parser = parse_go_duration)]
    pub service_graph_wait: Duration,

    /// Spans waiting for a service-graph partner, at most (oldest dropped first).
    #[arg(
        long,
        env = "MESHTRACE_SERVICE_GRAPH_MAX_ENTRIES",
        default_value_t = 100_000
    )]
    pub service_graph_max_entries: usize,

    /// Distinct service-graph edges tracked; past this, `__overflow__`.
    #[arg(
        long,
        env = "MESHTRACE_SERVICE_GRAPH_MAX_EDGES",
        default_value_t = 10_000
    )]
    pub service_graph_max_edges: usize,

    /// How far back the in-memory span metrics history (Monitor tab, `/api/metrics/*`) reaches (Go duration).
    #[arg(long, env = "MESHTRACE_SPAN_METRICS_HISTORY", default_value = "2h", value_parser = parse_go_duration)]
    pub span_metrics_history: Duration,

    /// Distinct (service, operation, kind) series the history keeps; past this, `__overflow__`.
    #[arg(
        long,
        env = "MESHTRACE_SPAN_METRICS_HISTORY_MAX_SERIES",
        default_value_t = 2_000
    )]
    pub span_metrics_history_max_series: usize,

    /// Jaeger-format sampling strategies file served on /api/sampling (none: probabilistic 1.0).
    #[arg(long, env = "MESHTRACE_SAMPLING_STRATEGIES_FILE")]
    pub sampling_strategies_file: Option<PathBuf>,

    /// Turns on adaptive sampling: the sampled traces per second wanted per operation.
    #[arg(long, env = "MESHTRACE_ADAPTIVE_SAMPLING_TARGET_TPS")]
    pub adaptive_sampling_target_tps: Option<f64>,

    /// How often adaptive probabilities are recomputed (Go duration).
    #[arg(long, env = "MESHTRACE_ADAPTIVE_SAMPLING_INTERVAL", default_value = "60s", value_parser = parse_go_duration)]
    pub adaptive_sampling_interval: Duration,

    /// Adaptive probabilities never go below this.
    #[arg(
        long,
        env = "MESHTRACE_ADAPTIVE_SAMPLING_MIN_PROBABILITY",
        default_value_t = 0.001
    )]
    pub adaptive_sampling_min_probability: f64,

    /// Keep spans in the embedded store (`--store=false`: a pure gateway that only forwards; no store is opened).
    #[arg(long, env = "MESHTRACE_STORE", default_value_t = true, action = clap::ArgAction::Set)]
    pub store: bool,

    /// Sections of the config file (`[tail-sampling]`, `[[exporters]]`); not flags.
    #[arg(skip)]
    pub sections: Sections,

    /// How long SIGTERM waits for receivers to drain and the store to flush (Go duration).
    #[arg(long, env = "MESHTRACE_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_go_duration)]
    pub shutdown_timeout: Duration,
}

/// Jaeger's default ports, used by `--jaeger-receivers`.
pub const JAEGER_DEFAULTS: [u16; 4] = [6831, 6832, 14268, 14250];

impl Config {
    /// The Jaeger receivers to start (compact, binary, HTTP, gRPC): each one's flag, else its default
    /// port when `--jaeger-receivers` is on.
    pub fn jaeger_addrs(&self) -> [Option<SocketAddr>; 4] {
        let given = [
            self.jaeger_compact_addr,
            self.jaeger_binary_addr,
            self.jaeger_http_addr,
            self.jaeger_grpc_addr,
        ];
        let mut out = given;
        for (addr, port) in out.iter_mut().zip(JAEGER_DEFAULTS) {
            if addr.is_none() && self.jaeger_receivers {
                *addr = Some(SocketAddr::from(([127, 0, 0, 1], port)));
            }
        }
        out
    }
}

/// The config file's sections that are not flags.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Sections {
    /// Tail sampling; off when absent.
    #[serde(default)]
    pub tail_sampling: Option<TailSamplingConfig>,
    /// OTLP exporters; none when absent.
    #[serde(default)]
    pub exporters: Vec<ExporterConfig>,
}

/// Parses `1048576`, `512KiB`, `20MiB`, `10GiB` (also KB/MB/GB as powers of 1000).
pub fn parse_byte_size(input: &str) -> Result<u64, String> {
    let s = input.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {input:?}"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown size unit {other:?} in {input:?}")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("size {input:?} out of range"))
}

/// A byte size of at least 1 MiB (fjall's least write buffer).
fn parse_write_buffer(input: &str) -> Result<u64, String> {
    let n = parse_byte_size(input)?;
    if n < 1 << 20 {
        return Err(format!("{input:?} is too small: at least 1MiB"));
    }
    Ok(n)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_byte_size("20MiB"), Ok(20 << 20));
        assert_eq!(parse_byte_size("1000"), Ok(1000));
        assert_eq!(parse_byte_size("2GB"), Ok(2_000_000_000));
        assert!(parse_byte_size("MiB").is_err());
        assert!(parse_byte_size("5XB").is_err());
        assert_eq!(parse_write_buffer("4MiB"), Ok(4 << 20));
        let err = parse_write_buffer("512KiB").unwrap_err();
        assert!(err.contains("at least 1MiB"), "{err}");
    }

    #[test]
    fn defaults_listen_on_loopback() {
        let c = super::super::config_file::tests::with_env(&[], || {
            Config::try_parse_from(["meshtrace-collector"]).map_err(|e| e.to_string())
        });
        let addrs = c.map(|c| {
            [
                c.otlp_http_addr,
                c.otlp_grpc_addr,
                c.zipkin_addr,
                c.http_addr,
                c.tempo_addr,
            ]
        });
        let addrs = addrs.unwrap_or_else(|e| panic!("{e}"));
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
        assert_eq!(addrs.map(|a| a.port()), [4318, 4317, 9411, 16686, 3200]);
    }

    #[test]
    fn jaeger_receivers_are_off_until_asked_for() {
        let parse = |args: &[&str]| {
            super::super::config_file::tests::with_env(&[], || {
                Config::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            })
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(parse(&[]).jaeger_addrs(), [None; 4], "off by default");
        let all = parse(&["--jaeger-receivers"]).jaeger_addrs();
        assert_eq!(
            all.map(|a| a.map(|a| a.port())),
            [Some(6831), Some(6832), Some(14268), Some(14250)]
        );
        let one = parse(&[
            "--jaeger-receivers=true",
            "--jaeger-http-addr",
            "127.0.0.1:1",
        ])
        .jaeger_addrs();
        assert_eq!(
            one[2].map(|a| a.port()),
            Some(1),
            "a flag beats the default port"
        );
        let only = parse(&["--jaeger-compact-addr", "127.0.0.1:2"]).jaeger_addrs();
        assert_eq!(only.map(|a| a.is_some()), [true, false, false, false]);
        assert!(
            Config::try_parse_from(["x", "--tls-cert-file", "c.pem"]).is_err(),
            "a certificate needs its key"
        );
    }
}
