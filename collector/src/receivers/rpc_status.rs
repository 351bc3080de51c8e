//! `google.rpc.Status`, the error body of OTLP/HTTP.

/// google.rpc.Status (details are never sent).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// gRPC code names used in bodies.
pub const INVALID_ARGUMENT: i32 = 3;
pub const RESOURCE_EXHAUSTED: i32 = 8;
pub const UNAUTHENTICATED: i32 = 16;
pub const UNAVAILABLE: i32 = 14;
pub const INTERNAL: i32 = 13;
