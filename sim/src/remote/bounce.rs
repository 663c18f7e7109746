//! A remote's late bounce (`action = "bounce_later"`): the remote accepted a message, and
//! later tells the envelope sender it could not be delivered after all — an RFC 3464
//! failure DSN, sent with a null reverse-path (RFC 5321 §4.5.5) to our MX like any other
//! mail. This is the "accepted now, bounced an hour later" of forwarders and of receivers
//! that queue before they check, and it must reach the local sender's mailbox.
//!
//! The DSN goes to the scenario's server (our MX) directly rather than through an MX
//! lookup of the sender's domain: in the world there is one MX that matters, and scenarios
//! need not publish our own zone for it. One attempt, no retry: a failure is traced.

use std::net::SocketAddr;

use mailsim_server::env::Timestamp;
use mailsim_server::mail::date::rfc5322;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::TcpStream;

use crate::clock::SimClock;
use crate::trace::Trace;

pub(super) struct Bounce {
    /// The remote's name: the DSN's Reporting-MTA and the trace's host.
    pub remote: String,
    pub mx: SocketAddr,
    pub sender: String,
    pub recipients: Vec<String>,
    /// The reply the recipients "failed" with (Diagnostic-Code, and the Status from it).
    pub diagnostic: String,
    /// The original message's header section (returned as text/rfc822-headers).
    pub headers: Vec<u8>,
    pub at: Timestamp,
}

impl Bounce {
    pub async fn send(self, clock: &SimClock, trace: &Trace) {
        clock.sleep_until(self.at).await;
        match self.deliver(clock, trace).await {
            Ok(()) => trace.record(
                &self.remote,
                "remote",
                format_args!("DSN to <{}> accepted by our MX", self.sender),
            ),
            Err(e) => trace.record(
                &self.remote,
                "remote",
                format_args!("DSN to <{}> failed: {e}", self.sender),
            ),
        }
    }

    async fn deliver(&self, clock: &SimClock, trace: &Trace) -> Result<(), String> {
        let mut stream = TcpStream::connect(self.mx)
            .await
            .map_err(|e| format!("connect {}: {e}", self.mx))?;
        let mut buf = Vec::new();
        let mut expect = async |stream: &mut TcpStream, code: char| -> Result<(), String> {
            let reply = read_reply(stream, &mut buf).await?;
            trace.record(&self.remote, "remote", format_args!("bounce S: {reply}"));
            match reply.starts_with(code) {
                true => Ok(()),
                false => Err(format!("unexpected reply {reply:?}")),
            }
        };
        expect(&mut stream, '2').await?;
        let body = self.message(clock.now());
        let commands = [
            format!("EHLO {}", self.remote),
            "MAIL FROM:<>".to_string(),
            format!("RCPT TO:<{}>", self.sender),
            "DATA".to_string(),
        ];
        for (i, command) in commands.iter().enumerate() {
            trace.record(&self.remote, "remote", format_args!("bounce C: {command}"));
            write(&mut stream, format!("{command}\r\n").as_bytes()).await?;
            expect(&mut stream, if i == 3 { '3' } else { '2' }).await?;
        }
        trace.record(
            &self.remote,
            "remote",
            format_args!("bounce C: [DSN {} octets]", body.len()),
        );
        write(&mut stream, &dot_stuff(&body)).await?;
        expect(&mut stream, '2').await?;
        let _ = write(&mut stream, b"QUIT\r\n").await;
        let _ = expect(&mut stream, '2').await;
        Ok(())
    }

    /// The DSN: multipart/report with a human part, the delivery-status and the headers.
    fn message(&self, now: Timestamp) -> Vec<u8> {
        let status = self
            .diagnostic
            .split_whitespace()
            .nth(1)
            .filter(|s| s.split('.').count() == 3 && s.starts_with('5'))
            .unwrap_or("5.0.0");
        let boundary = format!("dsn-{}-{}", self.remote, now.as_secs());
        let date = rfc5322(now);
        let mut m = format!(
            "From: Mail Delivery System <MAILER-DAEMON@{remote}>\r\n\
             To: <{sender}>\r\n\
             Subject: Undelivered Mail Returned to Sender\r\n\
             Date: {date}\r\n\
             Message-ID: <dsn.{secs}@{remote}>\r\n\
             Auto-Submitted: auto-replied\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\
             \tboundary=\"{boundary}\"\r\n\
             \r\n\
             --{boundary}\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\
             \r\n\
             Your message was accepted by {remote} but could not be delivered:\r\n\
             {diagnostic}\r\n\
             \r\n\
             --{boundary}\r\n\
             Content-Type: message/delivery-status\r\n\
             \r\n\
             Reporting-MTA: dns; {remote}\r\n",
            remote = self.remote,
            sender = self.sender,
            secs = now.as_secs(),
            diagnostic = self.diagnostic,
        );
        for r in &self.recipients {
            m.push_str(&format!(
                "\r\nFinal-Recipient: rfc822; {r}\r\nAction: failed\r\nStatus: {status}\r\n\
                 Diagnostic-Code: smtp; {}\r\n",
                self.diagnostic
            ));
        }
        m.push_str(&format!(
            "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        ));
        let mut out = m.into_bytes();
        out.extend_from_slice(&self.headers);
        if !self.headers.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        out
    }
}

async fn write(stream: &mut TcpStream, bytes: &[u8]) -> Result<(), String> {
    stream
        .write_all(bytes)
        .await
        .map_err(|e| format!("write: {e}"))
}

/// Dot-stuffs a CRLF message and appends the final `.` line.
fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 8);
    let mut at_line_start = true;
    for &b in body {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// One reply, its last line (`250 ...`), lines joined with " / ".
async fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<String, String> {
    let mut lines = Vec::new();
    loop {
        while let Some(pos) = buf.iter().position(|&c| c == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return Ok(lines.join(" / "));
            }
        }
        let mut chunk = [0u8; 2048];
        match stream.read(&mut chunk).await {
            Ok(0) => return Err("connection closed".into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dsn_is_a_delivery_status_report_with_the_headers() {
        let b = Bounce {
            remote: "mx1.other.net".into(),
            mx: "192.0.2.1:25".parse().unwrap(),
            sender: "alice@example.org".into(),
            recipients: vec!["bob@other.net".into()],
            diagnostic: "550 5.1.1 no such user".into(),
            headers: b"Subject: Hi\r\nFrom: alice@example.org\r\n".to_vec(),
            at: Timestamp::from_secs(1_767_225_600),
        };
        let m = String::from_utf8(b.message(b.at)).unwrap();
        assert!(m.contains("report-type=delivery-status"), "{m}");
        assert!(
            m.contains("Final-Recipient: rfc822; bob@other.net\r\n"),
            "{m}"
        );
        assert!(m.contains("Status: 5.1.1\r\n"), "{m}");
        assert!(
            m.contains("text/rfc822-headers\r\n\r\nSubject: Hi\r\n"),
            "{m}"
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(m.as_bytes())
            .unwrap();
        assert_eq!(
            parsed.subject(),
            Some("Undelivered Mail Returned to Sender")
        );
        assert_eq!(dot_stuff(b".a\r\nb"), b"..a\r\nb\r\n.\r\n");
    }
}
