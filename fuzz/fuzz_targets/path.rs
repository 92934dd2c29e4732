#![no_main]
//! libFuzzer entry point of `gitbacked_fuzz::path`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gitbacked_fuzz::path(data));
