//! The wire side of an exporter: one OTLP request, over HTTP (protobuf) or gRPC, in plain text or TLS
//! (`https://`: rustls with the system's roots or `tls.ca-file`, and a client certificate when given).
//! A failed TLS handshake is a permanent error carrying its reason: a wrong CA or an expired
//! certificate does not heal by retrying, and retrying would only fill the queue.

use std::str::FromStr;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::config::{ExporterConfig, Protocol};
use super::errors::ExportError;
use crate::tls::{client_config, handshake_failure, trust_nothing};

pub enum Client {
    Http {
        client: reqwest::Client,
        url: String,
        headers: Vec<(String, String)>,
    },
    Grpc {
        client: TraceServiceClient<Channel>,
        endpoint: String,
        headers: Vec<(
            MetadataKey<tonic::metadata::Ascii>,
            MetadataValue<tonic::metadata::Ascii>,
        )>,
    },
}

fn tls_error(endpoint: &str, reason: &str) -> ExportError {
    ExportError::Permanent(format!("TLS handshake with {endpoint} failed: {reason}"))
}

impl Client {
    pub fn new(config: &ExporterConfig) -> Result<Self, String> {
        let timeout = config.timeout.max(Duration::from_millis(1));
        let name = &config.name;
        match config.protocol {
            Protocol::Http => {
                let tls = if config.is_https() {
                    client_config(&config.tls, &[b"http/1.1"])
                } else {
                    trust_nothing()
                }
                .map_err(|e| format!("exporter {name}: {e}"))?;
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .use_preconfigured_tls(tls)
                    .build()
                    .map_err(|e| format!("exporter {name}: {e}"))?;
                Ok(Client::Http {
                    client,
                    url: config.endpoint.clone(),
                    headers: config
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                })
            }
            Protocol::Grpc => {
                let endpoint = Endpoint::from_str(&config.endpoint)
                    .map_err(|e| format!("exporter {name}: {e}"))?
                    .timeout(timeout)
                    .connect_timeout(timeout);
                let channel = if config.is_https() {
                    // No ALPN here: the connector's `enable_http2` sets h2 (and refuses a preset list).
                    let tls = client_config(&config.tls, &[])
                        .map_err(|e| format!("exporter {name}: {e}"))?;
                    let connector = hyper_rustls::HttpsConnectorBuilder::new()
                        .with_tls_config(tls)
                        .https_only()
                        .enable_http2()
                        .build();
                    endpoint.connect_with_connector_lazy(connector)
                } else {
                    endpoint.connect_lazy()
                };
                let headers = config
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        let key = MetadataKey::from_str(&k.to_ascii_lowercase())
                            .map_err(|e| format!("exporter {name}: header {k:?}: {e}"))?;
                        let value = MetadataValue::from_str(v)
                            .map_err(|e| format!("exporter {name}: header {k:?}: {e}"))?;
                        Ok((key, value))
                    })
                    .collect::<Result<_, String>>()?;
                Ok(Client::Grpc {
                    client: TraceServiceClient::new(channel),
                    endpoint: config.endpoint.clone(),
                    headers,
                })
            }
        }
    }

    pub async fn send(&mut self, request: ExportTraceServiceRequest) -> Result<(), ExportError> {
        match self {
            Client::Http {
                client,
                url,
                headers,
            } => {
                let mut builder = client
                    .post(url.as_str())
                    .header("content-type", "application/x-protobuf")
                    .body(request.encode_to_vec());
                for (k, v) in headers.iter() {
                    builder = builder.header(k.as_str(), v.as_str());
                }
                let response = builder
                    .send()
                    .await
                    .map_err(|e| match handshake_failure(&e) {
                        Some(reason) => tls_error(url, &reason),
                        None => ExportError::Retryable {
                            message: format!("HTTP request: {e}"),
                            retry_after: None,
                        },
                    })?;
                let status = response.status().as_u16();
                if (200..300).contains(&status) {
                    return Ok(());
                }
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = response.text().await.unwrap_or_default();
                Err(ExportError::from_http(
                    status,
                    retry_after.as_deref(),
                    &body,
                ))
            }
            Client::Grpc {
                client,
                endpoint,
                headers,
            } => {
                let mut req = tonic::Request::new(request);
                for (k, v) in headers.iter() {
                    req.metadata_mut().insert(k.clone(), v.clone());
                }
                client
                    .export(req)
                    .await
                    .map(|_| ())
                    .map_err(|s| match handshake_failure(&s) {
                        Some(reason) => tls_error(endpoint, &reason),
                        None => ExportError::from_grpc(&s),
                    })
            }
        }
    }
}
