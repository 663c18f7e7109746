//! Arbitrary bytes in arbitrary chunks into an SMTP session, every request answered
//! (body: `mailsim_server::smtp::fuzz::fuzz_smtp_session`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mailsim_server::smtp::fuzz::fuzz_smtp_session(data);
});
