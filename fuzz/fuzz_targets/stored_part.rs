#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    meshtrace_fuzz::run("stored_part", data);
});
