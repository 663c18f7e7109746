//! The one SMTP reply reader, sans-IO: bytes in, [`Reply`]s and trace lines out.
//!
//! Everything that reads replies uses it: the outbound client (`queue/client`), the
//! simulator's sender actors and the fuzz target `reply_reader`. One reader means one set of
//! framing rules and one set of bounds, so a reply the simulation accepts is a reply the
//! production client accepts.
//!
//! smtp-proto's `ResponseReceiver` parses a reply, but it trusts the peer more than a client
//! talking to arbitrary servers may: it takes the code of the first line only, caps the whole
//! reply at 4 KiB by failing, and its enhanced-code scanner leaves stray `\r`/`\n` in the text
//! of lines without one. So the framing is done here — lines end at LF (CRLF or bare LF), every
//! line must start with the same three-digit code, `-` continues and space (or nothing) ends
//! the reply — and each *line* is then handed to `ResponseReceiver` on its own, which splits
//! off the RFC 3463 enhanced status code.
//!
//! Hostile input is bounded, never fatal to the process:
//! - a line longer than [`MAX_LINE`] keeps its first [`MAX_LINE`] octets and the rest is
//!   skipped up to its LF (memory stays bounded even if no LF ever comes);
//! - a reply keeps at most [`MAX_KEPT_LINES`] lines / [`MAX_KEPT_OCTETS`] octets of text, plus
//!   its final line; the lines in between are counted and dropped;
//! - anything that is not a reply line (no code, a code outside 200–599, a bad separator, a
//!   continuation line whose code differs from the first) is a protocol error, after which
//!   the reader ignores all further input: once framing is lost nothing later can be trusted.
//!
//! Time is not this module's business: the client bounds each reply with a deadline.

use std::collections::VecDeque;

use memchr::memchr;
use smtp_proto::response::parser::ResponseReceiver;

use crate::mail::printable;
use crate::smtp::Reply;

/// Longest reply line kept (RFC 5321 §4.5.3.1.5 says 512 octets; Postfix accepts 2048).
pub const MAX_LINE: usize = 2048;
/// Most text lines of one reply kept before the final line (an EHLO has a dozen).
pub const MAX_KEPT_LINES: usize = 100;
/// Most octets of text of one reply kept before the final line.
pub const MAX_KEPT_OCTETS: usize = 8192;

/// Reassembles replies from whatever chunks the stream delivers.
#[derive(Debug, Default)]
pub struct ReplyReader {
    /// The line being received, up to `MAX_LINE` octets (no LF yet).
    line: Vec<u8>,
    /// Octets of the current line dropped beyond `MAX_LINE`.
    line_dropped: usize,
    /// The multi-line reply being assembled.
    current: Option<Partial>,
    /// Complete replies (or the one framing error) not yet taken, each with its lines as
    /// received.
    ready: VecDeque<Framed>,
    /// Received lines for the transcript, `S: ...`, in arrival order.
    log: Vec<String>,
    /// Set after a framing error: everything afterwards is ignored.
    failed: bool,
}

/// One complete reply (or the framing error), with the lines it arrived as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Framed {
    /// The parsed reply, or why the input stopped being replies.
    pub reply: Result<Reply, String>,
    /// The kept lines as received, made printable (`250-2.1.0 text`, no CRLF), a
    /// `[N more lines not kept]` marker where a flood was cut, and the offending line of a
    /// framing error. This is the transcript's view of the reply, without the `S: ` prefix.
    pub shown: Vec<String>,
}

#[derive(Debug)]
struct Partial {
    code: u16,
    lines: Vec<String>,
    shown: Vec<String>,
    enhanced: Option<(u8, u16, u16)>,
    kept_octets: usize,
    dropped_lines: usize,
}

impl ReplyReader {
    /// Feeds received bytes; complete replies become available through [`Self::next_reply`].
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.failed {
            match memchr(b'\n', bytes) {
                Some(lf) => {
                    self.append(&bytes[..lf]);
                    bytes = &bytes[lf + 1..];
                    let mut line = std::mem::take(&mut self.line);
                    if self.line_dropped == 0 && line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    let dropped = std::mem::take(&mut self.line_dropped);
                    self.on_line(&line, dropped);
                }
                None => {
                    self.append(bytes);
                    bytes = &[];
                }
            }
        }
    }

    /// The next complete reply, or the framing error that ended the stream of replies.
    pub fn next_reply(&mut self) -> Option<Result<Reply, String>> {
        self.ready.pop_front().map(|f| f.reply)
    }

    /// Like [`Self::next_reply`], with the reply's lines as received (for a caller that
    /// matches on the wire text rather than on the parsed reply, as the sim's actors do).
    pub fn next_framed(&mut self) -> Option<Framed> {
        self.ready.pop_front()
    }

    /// Moves the transcript lines received so far into `out`.
    pub fn drain_log(&mut self, out: &mut Vec<String>) {
        out.append(&mut self.log);
    }

    /// True when nothing has been received beyond the replies already taken: no partial line,
    /// no partial or queued reply. STARTTLS needs this (plaintext sent after the 220 and
    /// before the handshake must not be read as if it came over TLS, cf. CVE-2011-0411).
    pub fn is_drained(&self) -> bool {
        self.line.is_empty()
            && self.line_dropped == 0
            && self.current.is_none()
            && self.ready.is_empty()
    }

    /// What is left of an unfinished line, for the transcript when the stream ends.
    pub fn take_unfinished(&mut self) -> Option<String> {
        if self.line.is_empty() && self.line_dropped == 0 {
            return None;
        }
        let line = std::mem::take(&mut self.line);
        let dropped = std::mem::take(&mut self.line_dropped);
        Some(format!("S: {} [no end of line]", shown(&line, dropped)))
    }

    fn append(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.line.len());
        let keep = room.min(bytes.len());
        self.line.extend_from_slice(&bytes[..keep]);
        self.line_dropped = self.line_dropped.saturating_add(bytes.len() - keep);
    }

    fn on_line(&mut self, line: &[u8], dropped: usize) {
        let parsed = parse_line(line);
        let (code, last, text) = match parsed {
            Ok(p) => p,
            Err(why) => return self.fail(why.to_string(), shown(line, dropped)),
        };
        let partial = self.current.get_or_insert_with(|| Partial {
            code,
            lines: Vec::new(),
            shown: Vec::new(),
            enhanced: None,
            kept_octets: 0,
            dropped_lines: 0,
        });
        if partial.code != code {
            let first = partial.code;
            return self.fail(
                format!("multi-line reply with mismatched codes ({first} then {code})"),
                shown(line, dropped),
            );
        }
        let keep = last
            || (partial.lines.len() < MAX_KEPT_LINES
                && partial.kept_octets + text.len() <= MAX_KEPT_OCTETS);
        if !keep {
            partial.dropped_lines += 1;
            return;
        }
        if last && partial.dropped_lines > 0 {
            let marker = format!("[{} more lines not kept]", partial.dropped_lines);
            self.log.push(format!("S: {marker}"));
            partial.shown.push(marker);
        }
        let seen = shown(line, dropped);
        self.log.push(format!("S: {seen}"));
        partial.shown.push(seen);
        let (enhanced, text) = split_enhanced(code, text);
        partial.kept_octets += text.len();
        partial.lines.push(text);
        if enhanced.is_some() {
            partial.enhanced = enhanced;
        }
        if last {
            if let Some(done) = self.current.take() {
                self.ready.push_back(Framed {
                    reply: Ok(Reply {
                        code: done.code,
                        enhanced: done.enhanced,
                        lines: done.lines,
                    }),
                    shown: done.shown,
                });
            }
        }
    }

    /// Framing is lost at `line`: the lines of the unfinished reply and the offending one
    /// are what the caller gets to see, and nothing after.
    fn fail(&mut self, why: String, line: String) {
        self.log.push(format!("S: {line}"));
        let mut shown = self.current.take().map(|p| p.shown).unwrap_or_default();
        shown.push(line);
        self.failed = true;
        self.line.clear();
        self.line_dropped = 0;
        self.ready.push_back(Framed {
            reply: Err(why),
            shown,
        });
    }
}

/// `ddd` + (`-` | ` ` | end) + text → (code, is last line, text).
fn parse_line(line: &[u8]) -> Result<(u16, bool, &[u8]), &'static str> {
    let (digits, rest) = match line {
        [a, b, c, rest @ ..] if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() => {
            ([*a, *b, *c], rest)
        }
        _ => return Err("reply line without a three-digit code"),
    };
    let code = digits
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(200..600).contains(&code) {
        return Err("reply code outside 2xx-5xx");
    }
    match rest {
        [] => Ok((code, true, rest)),
        [b' ', text @ ..] => Ok((code, true, text)),
        [b'-', text @ ..] => Ok((code, false, text)),
        _ => Err("reply line with a bad separator after the code"),
    }
}

/// Splits the RFC 3463 enhanced code off one line's text, with smtp-proto's parser.
fn split_enhanced(code: u16, text: &[u8]) -> (Option<(u8, u16, u16)>, String) {
    let mut wire = Vec::with_capacity(text.len() + 6);
    wire.extend_from_slice(format!("{code} ").as_bytes());
    wire.extend_from_slice(text);
    wire.extend_from_slice(b"\r\n");
    let mut receiver = ResponseReceiver::default();
    match receiver.parse(&mut wire.iter()) {
        Ok(response) => {
            let [class, subject, detail] = response.esc;
            let enhanced = matches!(class, 2 | 4 | 5).then_some((
                class,
                u16::from(subject),
                u16::from(detail),
            ));
            let message = response.message.trim_end_matches(['\r', '\n']);
            (enhanced, printable(message.as_bytes()))
        }
        Err(_) => (None, printable(text)),
    }
}

/// A received line as the transcript shows it.
fn shown(line: &[u8], dropped: usize) -> String {
    if dropped == 0 {
        printable(line)
    } else {
        format!("{} [+{dropped} octets not kept]", printable(line))
    }
}

/// Fuzz body (`fuzz/fuzz_targets/reply_reader.rs`, and a proptest in `cargo test`): arbitrary
/// bytes, cut into chunks at arbitrary points (the first byte seeds the cuts), must never
/// panic the reader nor break its bounds — no kept line past [`MAX_LINE`], no reply past
/// [`MAX_KEPT_LINES`] + 1 lines, nothing after a framing error — and the cuts must not
/// change what is read.
pub fn fuzz_reply_reader(data: &[u8]) {
    let (seed, input) = match data.split_first() {
        Some((s, rest)) => (*s, rest),
        None => return,
    };
    let whole = read_all(std::iter::once(input));
    let chunked = read_all(chunks(seed, input));
    assert_eq!(whole, chunked, "chunking changed the replies");
}

/// Cuts `input` into pieces of 1..=16 octets, the lengths drawn from a xorshift seeded by
/// `seed` (so a fuzz input fully determines its chunking).
pub fn chunks(seed: u8, input: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut state = u32::from(seed) | 0x100;
    let mut rest = input;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (1 + state as usize % 16).min(rest.len());
        let (now, later) = rest.split_at(n);
        rest = later;
        Some(now)
    })
}

/// Feeds every chunk, checking the reader's bounds as it goes; returns all it read.
fn read_all<'a>(input: impl Iterator<Item = &'a [u8]>) -> (Vec<Framed>, Vec<String>) {
    let mut r = ReplyReader::default();
    let mut out = Vec::new();
    let mut log = Vec::new();
    for chunk in input {
        r.push(chunk);
        assert!(r.line.len() <= MAX_LINE, "line buffer past MAX_LINE");
        while let Some(f) = r.next_framed() {
            if let Ok(reply) = &f.reply {
                assert!(
                    reply.lines.len() <= MAX_KEPT_LINES + 1,
                    "too many lines kept"
                );
                assert!(
                    reply.lines.iter().all(|l| l.len() <= 4 * MAX_LINE),
                    "overlong line kept"
                );
                assert!((200..600).contains(&reply.code), "code out of range");
            }
            assert!(
                !out.iter().any(|o: &Framed| o.reply.is_err()),
                "a reply after a framing error"
            );
            out.push(f);
        }
        r.drain_log(&mut log);
    }
    log.extend(r.take_unfinished());
    (out, log)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8]) -> (Vec<Result<Reply, String>>, Vec<String>) {
        let mut r = ReplyReader::default();
        r.push(input);
        let mut out = Vec::new();
        while let Some(x) = r.next_reply() {
            out.push(x);
        }
        let mut log = Vec::new();
        r.drain_log(&mut log);
        (out, log)
    }

    #[test]
    fn single_and_multi_line_with_enhanced_codes() {
        let (replies, log) = all(
            b"250 2.1.0 Sender ok\r\n550-5.1.1 No such\r\n550 5.1.1 user here\r\n354 go ahead\n",
        );
        assert_eq!(
            replies,
            vec![
                Ok(Reply::new(250, (2, 1, 0), "Sender ok")),
                Ok(Reply {
                    code: 550,
                    enhanced: Some((5, 1, 1)),
                    lines: vec!["No such".into(), "user here".into()],
                }),
                Ok(Reply::plain(354, "go ahead")),
            ]
        );
        assert_eq!(
            log,
            [
                "S: 250 2.1.0 Sender ok",
                "S: 550-5.1.1 No such",
                "S: 550 5.1.1 user here",
                "S: 354 go ahead"
            ]
        );
    }

    #[test]
    fn byte_by_byte_is_the_same_as_all_at_once() {
        let input = b"220-mx.example ESMTP\r\n220 ready\r\n250 2.0.0 ok\r\n";
        let mut r = ReplyReader::default();
        for b in input {
            r.push(std::slice::from_ref(b));
        }
        let mut got = Vec::new();
        while let Some(x) = r.next_reply() {
            got.push(x);
        }
        assert_eq!(got, all(input).0);
        assert_eq!(got.len(), 2);
        assert!(r.is_drained());
    }

    #[test]
    fn bare_code_and_odd_texts() {
        let (replies, _) = all(b"250\r\n250 \r\n250-\r\n250 2.0.0\r\n250 100.address.org\r\n");
        assert_eq!(replies[0], Ok(Reply::plain(250, "")));
        assert_eq!(replies[1], Ok(Reply::plain(250, "")));
        assert_eq!(
            replies[2],
            Ok(Reply {
                code: 250,
                enhanced: Some((2, 0, 0)),
                lines: vec!["".into(), "".into()]
            })
        );
        assert_eq!(replies[3], Ok(Reply::plain(250, "100.address.org")));
    }

    #[test]
    fn garbage_and_mismatched_codes_are_errors_and_stop_the_reader() {
        let (replies, log) = all(b"HTTP/1.1 400 Bad Request\r\n250 ok\r\n");
        assert_eq!(replies.len(), 1);
        assert!(replies[0].is_err());
        assert_eq!(log, ["S: HTTP/1.1 400 Bad Request"]);

        let (replies, _) = all(b"250-a\r\n550 b\r\n");
        assert_eq!(
            replies,
            vec![Err(
                "multi-line reply with mismatched codes (250 then 550)".to_string()
            )]
        );
        for bad in [
            &b"25\r\n"[..],
            b"2500 x\r\n",
            b"250x\r\n",
            b"199 x\r\n",
            b"600 x\r\n",
        ] {
            let (replies, _) = all(bad);
            assert!(matches!(replies.as_slice(), [Err(_)]), "{bad:?}");
        }
    }

    #[test]
    fn overlong_lines_and_floods_are_bounded() {
        let mut input = b"250 ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 10_000));
        input.extend_from_slice(b"\r\n");
        let (replies, log) = all(&input);
        let Ok(reply) = &replies[0] else {
            panic!("{replies:?}")
        };
        assert_eq!(reply.lines[0].len(), MAX_LINE - 4);
        assert!(log[0].ends_with(&format!("[+{} octets not kept]", 10_005 - MAX_LINE)));

        let mut flood = Vec::new();
        for _ in 0..1000 {
            flood.extend_from_slice(b"250-filler\r\n");
        }
        flood.extend_from_slice(b"250 last\r\n");
        let (replies, log) = all(&flood);
        let Ok(reply) = &replies[0] else {
            panic!("{replies:?}")
        };
        assert_eq!(reply.lines.len(), MAX_KEPT_LINES + 1);
        assert_eq!(reply.lines.last().map(String::as_str), Some("last"));
        assert_eq!(log.len(), MAX_KEPT_LINES + 2);

        // No LF ever: memory stays at MAX_LINE.
        let mut r = ReplyReader::default();
        for _ in 0..100 {
            r.push(&[b'9'; 1000]);
        }
        assert!(r.line.len() <= MAX_LINE);
        assert!(r.next_reply().is_none());
        assert!(r.take_unfinished().is_some());
    }

    #[test]
    fn control_characters_are_escaped() {
        let (replies, log) = all(b"250 ok\x1b[31m \xff\r\n");
        assert_eq!(replies[0], Ok(Reply::plain(250, "ok\\x1b[31m \u{fffd}")));
        assert_eq!(log, ["S: 250 ok\\x1b[31m \u{fffd}"]);
    }

    #[test]
    fn each_reply_comes_with_its_lines_as_received() {
        let mut r = ReplyReader::default();
        r.push(b"250-mx.example\r\n250 2.0.0 ok\r\n220 x\r\n250-a\r\nHELLO\r\n");
        let first = r.next_framed().unwrap();
        assert_eq!(first.shown, ["250-mx.example", "250 2.0.0 ok"]);
        assert_eq!(first.reply.unwrap().enhanced, Some((2, 0, 0)));
        assert_eq!(r.next_framed().unwrap().shown, ["220 x"]);
        let broken = r.next_framed().unwrap();
        assert!(broken.reply.is_err());
        assert_eq!(
            broken.shown,
            ["250-a", "HELLO"],
            "the unfinished reply and the bad line"
        );
        assert!(r.next_framed().is_none());

        let mut flood = Vec::new();
        for _ in 0..MAX_KEPT_LINES + 3 {
            flood.extend_from_slice(b"250-x\r\n");
        }
        flood.extend_from_slice(b"250 end\r\n");
        let mut r = ReplyReader::default();
        r.push(&flood);
        let shown = r.next_framed().unwrap().shown;
        assert_eq!(shown.len(), MAX_KEPT_LINES + 2);
        assert_eq!(shown[MAX_KEPT_LINES], "[3 more lines not kept]");
        assert_eq!(shown[MAX_KEPT_LINES + 1], "250 end");
    }

    #[test]
    fn fuzz_body_holds_on_known_inputs_under_every_chunking() {
        for seed in 0..=255u8 {
            let mut data = vec![seed];
            data.extend_from_slice(b"220-a\r\n220 b\r\n250 2.0.0 ok\n500 x\r\n\xff\x00garbage");
            fuzz_reply_reader(&data);
        }
        fuzz_reply_reader(&[]);
        let cuts: Vec<usize> = chunks(7, &[0; 100]).map(<[u8]>::len).collect();
        assert_eq!(cuts.iter().sum::<usize>(), 100);
        assert!(cuts.iter().any(|&n| n != cuts[0]), "cuts vary: {cuts:?}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..16)) {
            let mut r = ReplyReader::default();
            for c in &chunks {
                r.push(c);
                while r.next_reply().is_some() {}
            }
            let _ = r.take_unfinished();
        }

        /// The fuzz target's body, on arbitrary bytes (the first byte picks the chunking).
        #[test]
        fn fuzz_body(data in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            fuzz_reply_reader(&data);
        }

        /// Near-replies reach deeper than uniform bytes: lines made of codes, separators
        /// and text.
        #[test]
        fn fuzz_body_on_reply_like_input(
            seed in proptest::num::u8::ANY,
            lines in proptest::collection::vec("[2-5][0-9][0-9][ -]?[ -~]{0,20}\r?\n", 0..40),
        ) {
            let mut data = vec![seed];
            for l in &lines {
                data.extend_from_slice(l.as_bytes());
            }
            fuzz_reply_reader(&data);
        }
    }
}
