//! `exec --process` documents (and the hook/process JSON they share) must fail cleanly on any
//! bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = rt::container::exec::parse_process(data);
});
