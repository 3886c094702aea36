//! config.json parsing and validation must fail cleanly, never panic or hang, on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rt::spec::parse(data);
});
