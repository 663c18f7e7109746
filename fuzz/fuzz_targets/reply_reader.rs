//! Arbitrary bytes in arbitrary chunks into the SMTP reply reader
//! (body: `mailsim_server::smtp::wire::fuzz_reply_reader`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mailsim_server::smtp::wire::fuzz_reply_reader(data);
});
