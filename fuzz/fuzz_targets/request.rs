#![no_main]
//! libFuzzer entry point of `gitbacked_fuzz::request`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gitbacked_fuzz::request(data));
