//! The wire side of an exporter: one OTLP request, over HTTP (protobuf) or gRPC.

use std::str::FromStr;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use super::config::{ExporterConfig, Protocol};
use super::errors::ExportError;

pub enum Client {
    Http {
        client: reqwest::Client,
        url: String,
        headers: Vec<(String, String)>,
    },
    Grpc {
        client: TraceServiceClient<Channel>,
        headers: Vec<(
            MetadataKey<tonic::metadata::Ascii>,
            MetadataValue<tonic::metadata::Ascii>,
        )>,
    },
}

impl Client {
    pub fn new(config: &ExporterConfig) -> Result<Self, String> {
        let timeout = config.timeout.max(Duration::from_millis(1));
        match config.protocol {
            Protocol::Http => {
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .build()
                    .map_err(|e| format!("exporter {}: {e}", config.name))?;
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
                let channel = Endpoint::from_str(&config.endpoint)
                    .map_err(|e| format!("exporter {}: {e}", config.name))?
                    .timeout(timeout)
                    .connect_timeout(timeout)
                    .connect_lazy();
                let headers = config
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        let key = MetadataKey::from_str(&k.to_ascii_lowercase())
                            .map_err(|e| format!("exporter {}: header {k:?}: {e}", config.name))?;
                        let value = MetadataValue::from_str(v)
                            .map_err(|e| format!("exporter {}: header {k:?}: {e}", config.name))?;
                        Ok((key, value))
                    })
                    .collect::<Result<_, String>>()?;
                Ok(Client::Grpc {
                    client: TraceServiceClient::new(channel),
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
                let response = builder.send().await.map_err(|e| ExportError::Retryable {
                    message: format!("HTTP request: {e}"),
                    retry_after: None,
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
            Client::Grpc { client, headers } => {
                let mut req = tonic::Request::new(request);
                for (k, v) in headers.iter() {
                    req.metadata_mut().insert(k.clone(), v.clone());
                }
                client
                    .export(req)
                    .await
                    .map(|_| ())
                    .map_err(|s| ExportError::from_grpc(&s))
            }
        }
    }
}
