//! Arbitrary bytes as a queue file (body: `mailsim_server::queue::store::fuzz_queue_file`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mailsim_server::queue::store::fuzz_queue_file(data);
});
