//! SMTP replies with RFC 3463 enhanced status codes.

use std::fmt;

/// One SMTP reply, possibly multi-line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// The RFC 3463 enhanced code `class.subject.detail`, when one applies.
    pub enhanced: Option<(u8, u16, u16)>,
    /// Text lines (at least one).
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply with an enhanced status code.
    pub fn new(code: u16, enhanced: (u8, u16, u16), text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A one-line reply without an enhanced code (greeting, 354, HELO).
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply (EHLO, HELP), each line with the same code.
    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// Appends the wire form (`250-...\r\n250 ...\r\n`) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        let n = self.lines.len().max(1);
        for i in 0..n {
            let sep = if i + 1 == n { ' ' } else { '-' };
            let text = self.lines.get(i).map(String::as_str).unwrap_or("");
            let _ = write!(out, "{}{}", self.code, sep);
            if let Some((c, s, d)) = self.enhanced {
                let _ = write!(out, "{c}.{s}.{d} ");
            }
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Wire-form lines without CRLF, for the trace.
    pub fn wire_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        String::from_utf8_lossy(&out)
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.wire_lines().join(" / "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_forms() {
        let mut out = Vec::new();
        Reply::new(550, (5, 1, 1), "No such user").write_to(&mut out);
        Reply::multi(250, vec!["mx".into(), "PIPELINING".into()]).write_to(&mut out);
        assert_eq!(
            out,
            b"550 5.1.1 No such user\r\n250-mx\r\n250 PIPELINING\r\n"
        );
    }
}
