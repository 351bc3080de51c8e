//! The tables. All keys are byte strings built in `keys`; integers inside keys are big-endian so that
//! byte order is numeric order.

use redb::{TableDefinition, TableError, WriteTransaction};

/// `trace(16) span(8) discriminator(4)` -> the span as an OTLP `ResourceSpans` with one span.
pub const SPANS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("spans");
/// `trace(16)` -> `TraceSummary` (first start, last end, error flag, stored bytes).
pub const TRACES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("traces");
/// `first start µs(8) trace(16)` -> (): traces oldest first, for retention and dependencies.
pub const TRACE_AGE: TableDefinition<&[u8], ()> = TableDefinition::new("trace_age");
/// `lp(service) start µs(8) spanref(28)` -> duration µs.
pub const BY_SERVICE: TableDefinition<&[u8], u64> = TableDefinition::new("idx_service");
/// `lp(service) lp(operation) start µs(8) spanref(28)` -> duration µs.
pub const BY_OPERATION: TableDefinition<&[u8], u64> = TableDefinition::new("idx_operation");
/// `lp(service) lp(tag key) lp(tag value) start µs(8) spanref(28)` -> duration µs.
pub const BY_TAG: TableDefinition<&[u8], u64> = TableDefinition::new("idx_tag");
/// `lp(service) duration µs(8) spanref(28)` -> start µs.
pub const BY_DURATION: TableDefinition<&[u8], u64> = TableDefinition::new("idx_duration");
/// service -> ().
pub const SERVICES: TableDefinition<&str, ()> = TableDefinition::new("services");
/// `lp(service) kind(1) operation` -> ().
pub const OPERATIONS: TableDefinition<&[u8], ()> = TableDefinition::new("operations");
/// Counters kept in the same transactions as the data.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const META_STORED_BYTES: &str = "stored_bytes";

pub fn create_all(txn: &WriteTransaction) -> Result<(), TableError> {
    txn.open_table(SPANS)?;
    txn.open_table(TRACES)?;
    txn.open_table(TRACE_AGE)?;
    txn.open_table(BY_SERVICE)?;
    txn.open_table(BY_OPERATION)?;
    txn.open_table(BY_TAG)?;
    txn.open_table(BY_DURATION)?;
    txn.open_table(SERVICES)?;
    txn.open_table(OPERATIONS)?;
    txn.open_table(META)?;
    Ok(())
}
