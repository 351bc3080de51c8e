//! The 32-bit hashes a span's searchable tags and operation are known by: the store's search entries
//! hold them, and a query hashes its conditions the same way to skip entries that cannot match. xxh3 of
//! the value seeded with xxh3 of `kind key`, folded to 32 bits; stable across builds, since they are
//! stored (a false match only costs a check against the spans).

use xxhash_rust::xxh3::xxh3_64_with_seed;

fn condition_hash(kind: u8, key: &[u8], value: &[u8]) -> u32 {
    let seed = xxh3_64_with_seed(key, u64::from(kind));
    let h = xxh3_64_with_seed(value, seed);
    (h ^ (h >> 32)) as u32
}

/// The hash of an operation (span name).
pub fn operation_hash(operation: &str) -> u32 {
    condition_hash(b'o', b"", operation.as_bytes())
}

/// The hash of a tag `key=value`, the value in the string form tag queries use.
pub fn tag_hash(key: &str, value: &str) -> u32 {
    tag_hash_bytes(key.as_bytes(), value.as_bytes())
}

/// `tag_hash` of bytes already known to be UTF-8.
pub fn tag_hash_bytes(key: &[u8], value: &[u8]) -> u32 {
    tag_hash_seeded(tag_seed(key), value)
}

/// The first half of `tag_hash_bytes`, which depends on the key only (reused for another value of the
/// same key).
pub fn tag_seed(key: &[u8]) -> u64 {
    xxh3_64_with_seed(key, u64::from(b't'))
}

/// The second half of `tag_hash_bytes`: `condition_hash(b't', key, value)` given `tag_seed(key)`.
pub fn tag_hash_seeded(seed: u64, value: &[u8]) -> u32 {
    let h = xxh3_64_with_seed(value, seed);
    (h ^ (h >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_hashes_in_halves_equal_the_stored_condition_hash() {
        for (key, value) in [
            ("", ""),
            ("http.route", "/api/{id}"),
            ("k".repeat(40).as_str(), "v"),
        ] {
            assert_eq!(
                tag_hash(key, value),
                condition_hash(b't', key.as_bytes(), value.as_bytes())
            );
        }
    }
}
