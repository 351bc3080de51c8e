//! The Jaeger agent's UDP receivers: one datagram is one `Agent.emitBatch` call. A packet too big,
//! truncated, not thrift or calling another method is counted in
//! `meshtrace_collector_udp_packets_dropped_total{receiver, reason}` and dropped; the receiver goes on.
//! UDP has no acknowledgement, so spans refused for overload are counted (`spans_refused_total`) and lost,
//! as with Jaeger's own agent.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::thrift::{read_emit_batch, Protocol, ThriftError};
use super::to_records;
use crate::receivers::{Conversion, ReceiverContext};
use crate::telemetry::Receiver;

/// Largest packet taken, as Jaeger's agent (`server-max-packet-size`, 65000 bytes).
pub const MAX_PACKET_BYTES: usize = 65_000;
/// Packets being stored at once; past this the socket is not read and the kernel buffers, then drops.
const MAX_IN_FLIGHT: usize = 64;

pub fn receiver(protocol: Protocol) -> Receiver {
    match protocol {
        Protocol::Compact => Receiver::JaegerCompact,
        Protocol::Binary => Receiver::JaegerBinary,
    }
}

/// Reads packets until `stop`, then waits for the packets already decoded to be stored.
pub async fn serve(
    socket: UdpSocket,
    protocol: Protocol,
    ctx: ReceiverContext,
    stop: CancellationToken,
) -> Result<(), String> {
    let receiver = receiver(protocol);
    // One byte more than a UDP payload can be, so nothing is ever cut short by the buffer.
    let mut buf = vec![0u8; 65_536];
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut storing = JoinSet::new();
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        while storing.try_join_next().is_some() {}
        let len = match received {
            Ok((len, _)) => len,
            Err(e) => {
                tracing::warn!(receiver = receiver.name(), error = %e, "UDP receive failed");
                continue;
            }
        };
        let Some(packet) = buf.get(..len).filter(|_| len <= MAX_PACKET_BYTES) else {
            ctx.metrics.dropped_packet(receiver, "too_big");
            continue;
        };
        let batch = match read_emit_batch(packet, protocol) {
            Ok(batch) => batch,
            Err(e) => {
                let reason = match e {
                    ThriftError::Method(_) => "unsupported",
                    _ => "malformed",
                };
                ctx.metrics.dropped_packet(receiver, reason);
                tracing::debug!(receiver = receiver.name(), error = %e, "UDP packet dropped");
                continue;
            }
        };
        let mut conversion = Conversion::default();
        to_records(batch, &mut conversion);
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let ctx = ctx.clone();
        storing.spawn(async move {
            let _ = ctx.store(receiver, &mut conversion).await;
            drop(permit);
        });
    }
    while storing.join_next().await.is_some() {}
    Ok(())
}
