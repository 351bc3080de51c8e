//! The tables (format 2). All keys are byte strings built in `keys`; integers inside keys are big-endian
//! so that byte order is numeric order.

use redb::{TableDefinition, TableError, WriteTransaction};

/// The store format this build reads and writes. Format 1 (one record and ~20 index entries per span)
/// is not readable: `Store::open` refuses it with a clear error.
pub const FORMAT_VERSION: u64 = 2;

/// `trace(16) hash(8)` -> trace part: `TraceSummary` header + LZ4-compressed OTLP `TracesData`.
pub const PARTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("parts");
/// `first start µs(8) trace(16)` -> (): parts oldest first, for retention and dependencies.
pub const TRACE_AGE: TableDefinition<&[u8], ()> = TableDefinition::new("trace_age");
/// `lp(service) start µs(8) part(24)` -> packed (min, max) duration µs.
pub const BY_SERVICE: TableDefinition<&[u8], u64> = TableDefinition::new("idx_service");
/// `lp(service) lp(operation) start µs(8) part(24)` -> packed (min, max) duration µs.
pub const BY_OPERATION: TableDefinition<&[u8], u64> = TableDefinition::new("idx_operation");
/// `lp(service) lp(tag key) lp(tag value) start µs(8) part(24)` -> packed (min, max) duration µs.
pub const BY_TAG: TableDefinition<&[u8], u64> = TableDefinition::new("idx_tag");
/// service -> ().
pub const SERVICES: TableDefinition<&str, ()> = TableDefinition::new("services");
/// `lp(service) kind(1) operation` -> ().
pub const OPERATIONS: TableDefinition<&[u8], ()> = TableDefinition::new("operations");
/// Counters kept in the same transactions as the data.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const META_STORED_BYTES: &str = "stored_bytes";
pub const META_FORMAT: &str = "format_version";
/// Settings fixed when the store was created.
pub const SETTINGS: TableDefinition<&str, &str> = TableDefinition::new("settings");
/// Comma-separated tag keys that get no index entries.
pub const SETTING_UNINDEXED: &str = "unindexed_tags";

pub fn create_all(txn: &WriteTransaction) -> Result<(), TableError> {
    txn.open_table(PARTS)?;
    txn.open_table(TRACE_AGE)?;
    txn.open_table(BY_SERVICE)?;
    txn.open_table(BY_OPERATION)?;
    txn.open_table(BY_TAG)?;
    txn.open_table(SERVICES)?;
    txn.open_table(OPERATIONS)?;
    txn.open_table(META)?;
    txn.open_table(SETTINGS)?;
    Ok(())
}
