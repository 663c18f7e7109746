//! Content scoring at the end of data (issue #10, "Measure and report"): one
//! [`Scorer::score`] — mail-parser's parse, the built-in rules, and an operator's
//! `[[scoring.rule]]` set (header, `ALL`-headers, body and rawbody regexes) — on messages of
//! 2 KiB (plain text), 50 KiB (multipart/alternative: text + HTML) and 1 MiB (multipart/mixed:
//! text + HTML + a base64 PDF-like attachment), built deterministically here.
//!
//! - `scoring/<size>`: the built-in rules plus the user rules below (what a configured MX does);
//! - `scoring_builtin_only/<size>`: the built-in rules alone, to show what the regexes add.
//!
//! Throughput is the message's octets (`Throughput::Bytes`). Before measuring, each message's
//! hits are checked against what it was built to hit, so a scorer that silently matched
//! nothing (or everything) would fail the bench rather than look fast.
//!
//! `cargo bench -p mailsim-benches --bench scoring -- --warm-up-time 1 --measurement-time 3`

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mailsim_server::policy::score::{ScoreConfig, Scorer, Signals};

/// A `[scoring]` section as an operator might write it: SpamAssassin-style rules over the
/// subject, a mailer header, the whole header block, the rendered text and the raw HTML.
const USER_RULES: &str = r#"
enabled = true
junk = 5.0
reject = 10.0

[[rule]]
name = "SUBJ_FREE_MONEY"
header = "Subject"
pattern = '(?i)\b(free|winner|cash|prize|lottery)\b'
score = 1.5

[[rule]]
name = "BULK_MAILER"
header = "X-Mailer"
pattern = '(?i)(mass|bulk)\s*mail(er)?'
score = 1.0

[[rule]]
name = "HDR_PRECEDENCE_JUNK"
header = "ALL"
pattern = '(?im)^Precedence:\s*(junk|bulk)'
score = 0.3

[[rule]]
name = "BODY_PILLS"
body = true
pattern = '(?i)cheap\s+(pills|meds|viagra)'
score = 3.5

[[rule]]
name = "BODY_CRYPTO_OFFER"
body = true
pattern = '(?i)(bitcoin|crypto)\s+(investment|opportunity|doubler)'
score = 2.0

[[rule]]
name = "BODY_UNSUBSCRIBE"
body = true
pattern = '(?i)to\s+unsubscribe\s+from\s+this\s+list'
score = 0.1

[[rule]]
name = "RAW_IP_LINK"
rawbody = true
pattern = '(?i)<a\s[^>]*href="?https?://\d{1,3}(\.\d{1,3}){3}'
score = 1.5

[[rule]]
name = "RAW_TRACKING_PIXEL"
rawbody = true
pattern = '(?i)<img\s[^>]*width="?1"?\s[^>]*height="?1"?'
score = 0.5
"#;

/// A small deterministic generator (64-bit LCG, Knuth's MMIX constants): the same bytes on
/// every run and machine, no RNG crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.next() as usize % xs.len()]
    }
}

use mailsim_benches::WORDS;

/// Text of about `size` octets in CRLF lines of at most ~72 characters.
fn prose(rng: &mut Lcg, size: usize) -> String {
    let mut out = String::with_capacity(size + 80);
    let mut line = String::new();
    while out.len() + line.len() < size {
        let w = rng.pick(WORDS);
        if line.len() + w.len() + 1 > 72 {
            out.push_str(&line);
            out.push_str("\r\n");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    out.push_str(&line);
    out.push_str("\r\n");
    out
}

/// HTML of about `size` octets: paragraphs with bold words and links, one 1×1 image.
fn html(rng: &mut Lcg, size: usize) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\r\n<html><head><meta charset=\"utf-8\"><title>Update</title></head>\r\n<body>\r\n",
    );
    let mut n = 0;
    while out.len() < size {
        out.push_str("<p>");
        for _ in 0..12 {
            let w = rng.pick(WORDS);
            match rng.next() % 8 {
                0 => {
                    let _ = write!(out, "<b>{w}</b> ");
                }
                1 => {
                    let _ = write!(out, "<a href=\"https://news.sender.test/r/{n}\">{w}</a> ");
                    n += 1;
                }
                _ => {
                    out.push_str(w);
                    out.push(' ');
                }
            }
        }
        out.push_str("</p>\r\n");
    }
    out.push_str(
        "<p>To unsubscribe from this list, <a href=\"https://news.sender.test/u\">click here</a>.</p>\r\n\
<img src=\"https://news.sender.test/o.gif\" width=\"1\" height=\"1\" alt=\"\">\r\n</body></html>\r\n",
    );
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 (RFC 2045 §6.8) of pseudo-random octets in 76-character lines, `size` octets of
/// text or a little less (whole 4-character groups only).
fn base64_lines(rng: &mut Lcg, size: usize) -> String {
    let mut out = String::with_capacity(size + 80);
    let mut col = 0;
    while out.len() + 4 + 2 <= size {
        let v = rng.next() & 0xff_ffff; // three octets
        for shift in [18, 12, 6, 0] {
            out.push(B64[(v >> shift) as usize & 63] as char);
        }
        col += 4;
        if col == 76 {
            out.push_str("\r\n");
            col = 0;
        }
    }
    if col != 0 {
        out.push_str("\r\n");
    }
    out
}

fn headers(subject: &str, content_type: &str) -> String {
    format!(
        "Return-Path: <news@sender.test>\r\n\
Received: from mail.sender.test (mail.sender.test [203.0.113.5])\r\n\tby mx.example.org with ESMTPS id 4F2A1B; Thu, 03 Dec 2026 10:00:01 +0000\r\n\
Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n\
Message-ID: <20261203100000.4F2A1B@sender.test>\r\n\
From: Sender News <news@sender.test>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: {subject}\r\n\
List-Id: <news.sender.test>\r\n\
List-Unsubscribe: <https://news.sender.test/u>\r\n\
X-Mailer: SenderMail 4.2\r\n\
MIME-Version: 1.0\r\n\
Content-Type: {content_type}\r\n\r\n"
    )
}

/// 2 KiB: a plain-text message with the usual header block.
fn small() -> Vec<u8> {
    let mut rng = Lcg(2);
    let mut m = headers("Team update for December", "text/plain; charset=utf-8");
    let tail = "\r\nTo unsubscribe from this list, reply with \"remove\".\r\n";
    let fill = 2048 - m.len() - tail.len();
    m.push_str(&prose(&mut rng, fill - 80));
    m.push_str(tail);
    m.into_bytes()
}

/// `multipart/alternative` with a text part of `text` octets and an HTML part of `html_size`.
fn alternative(rng: &mut Lcg, boundary: &str, text: usize, html_size: usize) -> String {
    let mut m = format!(
        "--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    );
    m.push_str(&prose(rng, text));
    m.push_str("\r\nTo unsubscribe from this list, visit https://news.sender.test/u\r\n");
    let _ = write!(
        m,
        "--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    );
    m.push_str(&html(rng, html_size));
    let _ = write!(m, "--{boundary}--\r\n");
    m
}

/// 50 KiB: text and HTML alternatives of one newsletter.
fn medium() -> Vec<u8> {
    let mut rng = Lcg(50);
    let mut m = headers(
        "Quarterly newsletter",
        "multipart/alternative; boundary=\"alt-50\"",
    );
    let body = 50 * 1024 - m.len();
    m.push_str(&alternative(
        &mut rng,
        "alt-50",
        body * 2 / 5,
        body * 3 / 5 - 600,
    ));
    m.into_bytes()
}

/// 1 MiB: the newsletter's text and HTML, and a base64 attachment filling the rest.
fn large() -> Vec<u8> {
    let mut rng = Lcg(1024);
    let mut m = headers(
        "Quarterly report with figures",
        "multipart/mixed; boundary=\"mix-1m\"",
    );
    m.push_str("--mix-1m\r\nContent-Type: multipart/alternative; boundary=\"alt-1m\"\r\n\r\n");
    m.push_str(&alternative(&mut rng, "alt-1m", 16 * 1024, 32 * 1024));
    m.push_str(
        "--mix-1m\r\nContent-Type: application/pdf; name=\"q4-report.pdf\"\r\n\
Content-Disposition: attachment; filename=\"q4-report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n",
    );
    let end = "--mix-1m--\r\n";
    let fill = 1024 * 1024 - m.len() - end.len();
    m.push_str(&base64_lines(&mut rng, fill));
    m.push_str(end);
    m.into_bytes()
}

fn signals() -> Signals {
    Signals {
        spf: Some("pass".into()),
        dkim: Some("pass".into()),
        dmarc: Some("pass".into()),
        dnsbl: Vec::new(),
        fcrdns: Some(true),
    }
}

fn scorer(text: &str) -> Scorer {
    let config: ScoreConfig = toml::from_str(text).expect("the bench's [scoring] parses");
    Scorer::new(&config).expect("the bench's [scoring] is valid")
}

fn hits(s: &Scorer, m: &[u8]) -> Vec<String> {
    s.score(m, &signals())
        .hits
        .into_iter()
        .map(|h| h.rule)
        .collect()
}

fn bench_scoring(c: &mut Criterion) {
    let user = scorer(USER_RULES);
    let builtin = scorer("enabled = true\n");
    let messages = [
        ("2KiB", small(), vec!["BODY_UNSUBSCRIBE"]),
        (
            "50KiB",
            medium(),
            vec!["BODY_UNSUBSCRIBE", "RAW_TRACKING_PIXEL"],
        ),
        (
            "1MiB",
            large(),
            vec!["BODY_UNSUBSCRIBE", "RAW_TRACKING_PIXEL"],
        ),
    ];
    // The figures are only worth something if the rules ran over the whole text: each
    // message ends its text parts with the phrase BODY_UNSUBSCRIBE looks for, the HTML ends
    // with the 1×1 image, nothing else is meant to fire, and the built-in rules alone
    // find nothing in these well-formed messages.
    for (name, m, want) in &messages {
        eprintln!("scoring bench: {name} message is {} octets", m.len());
        assert_eq!(hits(&user, m), *want, "{name}: user rules");
        assert_eq!(hits(&builtin, m), Vec::<String>::new(), "{name}: built-ins");
    }

    let sig = signals();
    for (group, s) in [("scoring", &user), ("scoring_builtin_only", &builtin)] {
        let mut g = c.benchmark_group(group);
        for (name, m, _) in &messages {
            g.throughput(Throughput::Bytes(m.len() as u64));
            g.bench_with_input(BenchmarkId::from_parameter(name), m, |b, m| {
                b.iter(|| s.score(black_box(m), &sig))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench_scoring);
criterion_main!(benches);
