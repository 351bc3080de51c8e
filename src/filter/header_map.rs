//! The request headers straight from the proxy's serialized map: the one
//! `unsafe` function of the filter (see DESIGN.md, "The header map").
//!
//! The SDK's `get_map_bytes` turns the map Envoy serialized into a list of
//! owned pairs: two allocations and a UTF-8 check per header, a panic on a
//! name that is not UTF-8, a panic on a status other than Ok. Here the
//! buffer is taken as it is and [`HeaderMap::parse`] (safe, bounds-checked)
//! lends the pairs out of it.

use crate::headers::{Garbled, HeaderMap};

/// `MapType::HttpRequestHeaders` of the proxy-wasm ABI 0.2.
const HTTP_REQUEST_HEADERS: u32 = 0;
/// `Status::Ok` of the proxy-wasm ABI 0.2.
const OK: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    // The status is read as a plain `u32`: a value the SDK's `Status` enum
    // does not list must not be undefined behaviour.
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
}

/// The serialized request header map, owned: empty when the proxy has none
/// or refuses the call.
#[allow(unsafe_code)]
fn raw_request_headers() -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the import only writes the two out-pointers, which point at
    // live locals of the right types.
    let status = unsafe { proxy_get_header_map_pairs(HTTP_REQUEST_HEADERS, &mut data, &mut size) };
    if status != OK || data.is_null() {
        return Vec::new();
    }
    // SAFETY: on Ok with a non-null pointer the host has filled a buffer of
    // exactly `size` bytes that it obtained from this module's
    // `proxy_on_memory_allocate(size)` (the SDK's allocator: a `Box<[u8]>`
    // of `size` bytes, alignment 1, from the global allocator) and then
    // handed over: nothing else refers to it, so a `Vec` of length and
    // capacity `size` may own it and free it through the same allocator.
    unsafe { Vec::from_raw_parts(data, size, size) }
}

/// The request headers, or [`Garbled`] (with an empty map to use) when the
/// proxy's buffer does not parse.
pub fn request_headers() -> Result<HeaderMap, Garbled> {
    HeaderMap::parse(raw_request_headers())
}
