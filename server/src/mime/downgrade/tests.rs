use mail_parser::{MessageParser, PartType};

use super::*;
use crate::mime::{content_class, ContentClass};

fn crlf(s: &str) -> Vec<u8> {
    s.replace('\n', "\r\n").into_bytes()
}

#[test]
fn single_text_part_becomes_quoted_printable_with_mime_version() {
    let m = crlf("From: a@example.org\nSubject: x\n\nGrüße aus Köln\n");
    let d = downgrade(&m, false).unwrap();
    assert_eq!(
        String::from_utf8(d.message).unwrap(),
        "From: a@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n"
    );
    assert_eq!((d.quoted_printable, d.base64), (1, 0));
}

#[test]
fn an_existing_transfer_encoding_field_is_replaced() {
    let m = crlf(
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding:\n 8bit\nX: y\n\nBär\n",
    );
    let d = downgrade(&m, false).unwrap();
    assert_eq!(
        String::from_utf8(d.message).unwrap(),
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\nX: y\r\n\r\nB=C3=A4r\r\n"
    );
}

const MULTI: &str = "From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b1\"\n\npreamble\n--b1\nContent-Type: text/plain; charset=us-ascii\n\nplain 7bit\n--b1\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nGrüße aus Köln\n--b1\nContent-Type: application/octet-stream\n\n\u{ff}\u{fe}binary\n--b1--\nepilogue\n";

#[test]
fn multipart_structure_and_seven_bit_parts_are_copied_byte_for_byte() {
    let m = crlf(MULTI);
    let d = downgrade(&m, false).unwrap();
    let out = String::from_utf8(d.message.clone()).unwrap();
    assert_eq!((d.quoted_printable, d.base64), (1, 1));
    assert!(out.starts_with(
        "From: a@example.org\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain 7bit\r\n--b1\r\n"
    ), "{out}");
    assert!(out.contains(
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n--b1\r\n"
    ), "{out}");
    let b64 = data_encoding::BASE64_MIME.encode("\u{ff}\u{fe}binary".as_bytes());
    assert!(out.contains(&format!(
        "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\nepilogue\r\n",
        b64.trim_end()
    )), "{out}");
    assert_eq!(content_class(&d.message), ContentClass::SevenBit);
}

#[test]
fn with_8bitmime_only_binary_parts_are_encoded() {
    let m = crlf(MULTI);
    assert_eq!(downgrade(&m, true), None);
    let m = crlf(
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nä\n--b\nContent-Type: application/x-raw\n\nnul\0here\n--b--\n",
    );
    let d = downgrade(&m, true).unwrap();
    let out = String::from_utf8(d.message).unwrap();
    assert!(out.contains("\r\n\r\nä\r\n--b\r\n"), "{out}");
    assert!(out.contains("base64\r\n\r\nbnVsAGhlcmU=\r\n--b--"), "{out}");
}

#[test]
fn nested_messages_are_recursed_not_encoded() {
    let m = crlf(
        "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: message/rfc822\n\nSubject: inner\nContent-Type: text/plain; charset=utf-8\n\nInnen ü\n--o--\n",
    );
    let d = downgrade(&m, false).unwrap();
    let out = String::from_utf8(d.message).unwrap();
    assert!(out.contains("--o\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nInnen =C3=BC\r\n--o--"), "{out}");
    // No MIME-Version inside the nested message's header: only the top level gets one.
    assert_eq!(out.matches("MIME-Version").count(), 1);
}

#[test]
fn seven_bit_messages_and_headerless_input_are_left_alone() {
    assert_eq!(downgrade(&crlf("Subject: x\n\nplain\n"), false), None);
    assert_eq!(downgrade(b"", false), None);
    assert_eq!(downgrade(b"\xff\xfe", false), None);
}

// ---- property: decoding a downgraded part gives the original part's content ----

fn leaf_contents(raw: &[u8]) -> Vec<Vec<u8>> {
    let m = MessageParser::default().parse(raw).unwrap();
    m.parts
        .iter()
        .filter(|p| !matches!(p.body, PartType::Multipart(_) | PartType::Message(_)))
        .map(|p| p.contents().to_vec())
        .collect()
}

fn body_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    proptest::collection::vec(
        prop_oneof![
            Just("a".to_string()),
            Just(" ".to_string()),
            Just("=".to_string()),
            Just(".".to_string()),
            Just("\r\n".to_string()),
            Just("ü".to_string()),
            Just("€".to_string()),
            Just("\t".to_string()),
        ],
        1..60,
    )
    .prop_map(|v| v.concat().into_bytes())
}

proptest::proptest! {
    #[test]
    fn downgraded_parts_decode_to_the_originals_and_the_message_is_7bit(
        text in body_strategy(),
        bin in proptest::collection::vec(proptest::num::u8::ANY, 1..200),
        keep in proptest::bool::ANY,
    ) {
        let mut m = crlf("From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"=_b\"\n\n--=_b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n");
        m.extend_from_slice(&text);
        m.extend_from_slice(b"\r\n--=_b\r\nContent-Type: application/octet-stream\r\n\r\n");
        // Binary content that cannot contain the boundary: no '-' octets.
        let bin: Vec<u8> = bin.into_iter().map(|b| if b == b'-' { b'+' } else { b }).collect();
        m.extend_from_slice(&bin);
        m.extend_from_slice(b"\r\n--=_b--\r\n");
        let before = leaf_contents(&m);
        match downgrade(&m, keep) {
            Some(d) => {
                proptest::prop_assert_eq!(leaf_contents(&d.message), before);
                if !keep {
                    proptest::prop_assert_eq!(content_class(&d.message), ContentClass::SevenBit);
                } else {
                    proptest::prop_assert!(content_class(&d.message) != ContentClass::Binary);
                }
            }
            None => {
                let most = if keep { ContentClass::EightBit } else { ContentClass::SevenBit };
                proptest::prop_assert!(content_class(&m) <= most);
            }
        }
    }
}
