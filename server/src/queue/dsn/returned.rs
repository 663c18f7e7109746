//! The returned message (the third MIME part, CRLF-normalised) and a MIME boundary that
//! occurs in none of the parts, derived from the Message-ID so a DSN is deterministic.

use std::borrow::Cow;

/// `message` with every bare LF and bare CR turned into CRLF.
pub(super) fn crlf_normalized(message: &[u8]) -> Cow<'_, [u8]> {
    let clean = message.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => message.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && message.get(i - 1) == Some(&b'\r'),
        _ => true,
    });
    if clean {
        return Cow::Borrowed(message);
    }
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 2);
    let mut bytes = message.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\r' => {
                if bytes.peek() == Some(&b'\n') {
                    bytes.next();
                }
                out.extend_from_slice(b"\r\n");
            }
            b'\n' => out.extend_from_slice(b"\r\n"),
            _ => out.push(b),
        }
    }
    Cow::Owned(out)
}

/// A MIME boundary derived from the Message-ID, the first candidate that occurs in none of
/// `contents`. The `=_` prefix cannot appear in quoted-printable or base64 output.
pub(super) fn choose_boundary(message_id: &str, contents: &[&[u8]]) -> String {
    let seed = fnv1a64(message_id.as_bytes());
    let mut attempt: u64 = 0;
    loop {
        let candidate = format!(
            "=_mailsim-dsn-{:016x}",
            splitmix64(seed ^ attempt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        );
        let finder = memchr::memmem::Finder::new(candidate.as_bytes());
        if contents.iter().all(|c| finder.find(c).is_none()) {
            return candidate;
        }
        // Each content can hold only finitely many candidates, so this ends.
        attempt += 1;
    }
}

pub(super) fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h: u64, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

pub(super) fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
