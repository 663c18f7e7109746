//! Arbitrary bytes as one zone-record line of the simulator's DNS
//! (body: `mailsim::dns::zone::fuzz_zone_record`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mailsim::dns::zone::fuzz_zone_record(data);
});
