//! The conformance sweep (issue #9 item 8): every command of RFC 5321 §4.1 and of the
//! extensions we offer (SIZE RFC 1870, 8BITMIME RFC 6152, CHUNKING/BINARYMIME RFC 3030, DSN
//! RFC 3461, SMTPUTF8 RFC 6531) with the argument shapes the RFCs name, and the reply each
//! must get, in one table.
//!
//! Each row runs in a fresh session brought to its [`Setup`] state, sends one command line
//! and compares the reply with the row's expected prefix (code, enhanced status code where
//! RFC 2034 makes one due, and text where the code alone would not tell two answers apart);
//! then [`Then`] checks what state the session is left in (a syntax error must not swallow
//! the following commands, a refused chunk's octets are read as data, ...). All mismatches
//! are collected and reported together, so one failing run lists everything at once.
//!
//! The table says what the RFCs require. Where they leave room the row name says whose
//! behaviour we follow (Postfix 3.7 unless a row says otherwise).
//!
//! Row syntax: the command is sent with CRLF appended unless it ends in LF already;
//! `{N*c}` stands for the character `c` repeated `N` times (long lines and addresses).
//! A BDAT row carries its chunk after the command line, the appended CRLF being the
//! chunk's last two octets.

use super::*;

/// Where a row starts: what was said before its command (each step's reply is checked).
#[derive(Clone, Copy, Debug)]
enum Setup {
    /// Just connected: the 220 greeting and nothing else.
    Fresh,
    /// After `EHLO client.test`.
    Greeted,
    /// After `HELO client.test`: no service extensions, so every ESMTP parameter is 555.
    HeloOnly,
    /// After HELO and `MAIL FROM:<sender@remote.test>`.
    HeloMail,
    /// After EHLO and `MAIL FROM:<sender@remote.test>`.
    InMail,
    /// After EHLO, `MAIL FROM:<sender@remote.test> SMTPUTF8`.
    Utf8Mail,
    /// After EHLO, MAIL and `RCPT TO:<alice@example.org>`.
    InRcpt,
    /// As [`Setup::InRcpt`], with `BODY=BINARYMIME` on MAIL.
    Binary,
    /// As [`Setup::InRcpt`], then a first chunk `BDAT 4` (not LAST).
    InBdat,
    /// As [`Setup::InRcpt`], then `BDAT 5 LAST`: the message is stored, no transaction.
    AfterLast,
    /// After EHLO, MAIL and 100 accepted RCPTs (RFC 5321 §4.5.3.1.8's minimum, our limit).
    FullRcpts,
}

/// What the session must be like after the row's reply.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// In command mode: a `NOOP` gets `250 2.0.0 Ok`.
    Command,
    /// In command mode with the transaction still open: `BDAT 0 LAST` stores the message.
    Open,
    /// In command mode and without a transaction: `RCPT` is `503 5.5.1`.
    NoTransaction,
    /// Reading message content: `NOOP` and `.` end it, the NOOP stored as content.
    Content,
    /// The session closed after the reply.
    Closed,
}

use Setup::*;
use Then::*;

/// (row name and RFC reference, setup, command line, expected reply prefix, then).
type Row = (&'static str, Setup, &'static str, &'static str, Then);

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // RFC 5321 §4.1.1.9 NOOP, §4.1.1.5 RSET, §4.1.1.10 QUIT, §4.1.1.8 HELP.
    ("5321 4.1.1.9 NOOP", Fresh, "NOOP", "250 2.0.0 Ok", Command),
    ("5321 4.1.1.9 NOOP with a String argument", Fresh, "NOOP hello there", "250 2.0.0 Ok", Command),
    ("5321 2.4 verbs in lower case: noop", Fresh, "noop", "250 2.0.0 Ok", Command),
    ("5321 2.4 verbs in mixed case: NoOp", Fresh, "NoOp", "250 2.0.0 Ok", Command),
    ("5321 4.1.1.5 RSET", Fresh, "RSET", "250 2.0.0 Ok", Command),
    ("5321 4.1.1.5 RSET takes no argument", Fresh, "RSET x", "501 5.5.4", Command),
    ("5321 4.1.1.10 QUIT", Fresh, "QUIT", "221 2.0.0", Closed),
    ("5321 4.1.1.10 quit in lower case", Fresh, "quit", "221 2.0.0", Closed),
    ("5321 4.1.1.10 QUIT with an argument: Postfix 3.7 does not check it, 221", Fresh, "QUIT now", "221 2.0.0", Closed),
    ("5321 4.1.1.8 HELP", Fresh, "HELP", "214 2.0.0", Command),
    ("5321 4.1.1.8 HELP with a topic", Fresh, "HELP MAIL", "214 2.0.0", Command),
    // RFC 5321 §3.5.3, §4.1.1.6, §4.1.1.7, §7.3: VRFY and EXPN.
    ("5321 3.5.3 VRFY: 252, nothing verified", Fresh, "VRFY alice", "252 2.5.0", Command),
    ("5321 4.1.1.6 VRFY without its String: 501", Fresh, "VRFY", "501 5.5.4", Command),
    ("5321 7.3 EXPN disabled: 502", Fresh, "EXPN team", "502 5.5.1", Command),
    // RFC 5321 §4.1.4: order of commands.
    ("5321 4.1.4 MAIL before EHLO/HELO: 503", Fresh, "MAIL FROM:<a@b.test>", "503 5.5.1", Command),
    ("5321 4.1.4 bad MAIL before EHLO: the 503 wins", Fresh, "MAIL FROM:<a b@c.test", "503 5.5.1", Command),
    ("5321 4.1.4 RCPT before MAIL: 503", Fresh, "RCPT TO:<alice@example.org>", "503 5.5.1", Command),
    ("5321 4.1.4 DATA before MAIL: 503", Fresh, "DATA", "503 5.5.1", Command),
    ("3030 2 BDAT before EHLO: CHUNKING not negotiated, 502", Fresh, "BDAT 0 LAST", "502 5.5.1", Command),
    // RFC 5321 §4.2.4, §4.5.3.1.4, §2.3.8: unknown and malformed command lines.
    ("5321 4.2.4 unknown command: 500", Fresh, "FOO bar", "500 5.5.2", Command),
    ("5321 4.2.4 empty line: 500", Fresh, "", "500 5.5.2", Command),
    ("LHLO is LMTP (RFC 2033), not SMTP: 500", Fresh, "LHLO client.test", "500 5.5.2", Command),
    ("5321 4.5.3.1.4 command line of 512 octets with CRLF", Fresh, "NOOP {505*x}", "250 2.0.0 Ok", Command),
    ("5321 4.5.3.1.4 command line of 513 octets: 500 5.5.6", Fresh, "NOOP {506*x}", "500 5.5.6", Command),
    ("5321 4.5.3.1.4 a 2000-octet MAIL line: 500 5.5.6, answered at its end", Greeted, "MAIL FROM:<{2000*a}@b.test>", "500 5.5.6", Command),
    ("5321 2.3.8 NUL in a command: 500", Fresh, "NO\0OP", "500 5.5.2", Command),
    ("5321 2.3.8 bare CR in a command: 500", Fresh, "NOOP\rRSET", "500 5.5.2", Command),
    ("5321 2.3.8 NUL in a path: 500", Greeted, "MAIL FROM:<a@b\0.test>", "500 5.5.2", Command),
    ("5321 2.3.8 bare LF ends a line: Postfix 3.7 accepts it", Fresh, "NOOP\n", "250 2.0.0 Ok", Command),
    ("3207 STARTTLS not offered here: 502", Fresh, "STARTTLS", "502 5.5.1", Command),
    ("4954 AUTH not offered here: 502", Fresh, "AUTH PLAIN AGEAYg==", "502 5.5.1", Command),
    ("1985 ETRN not implemented: 502", Fresh, "ETRN example.org", "502 5.5.1", Command),
    // RFC 5321 §4.1.1.1: EHLO and HELO.
    ("5321 4.1.1.1 EHLO", Fresh, "EHLO client.test", "250 DSN", Command),
    ("5321 4.1.1.1 ehlo in lower case", Fresh, "ehlo client.test", "250 DSN", Command),
    ("5321 4.1.1.1 EHLO with an IPv4 address literal", Fresh, "EHLO [192.0.2.1]", "250 DSN", Command),
    ("5321 4.1.1.1 EHLO with an IPv6 address literal", Fresh, "EHLO [IPv6:2001:db8::1]", "250 DSN", Command),
    ("5321 4.1.1.1 EHLO without a domain: 501", Fresh, "EHLO", "501 5.5.4", Command),
    ("5321 4.1.1.1 EHLO with only spaces: 501", Fresh, "EHLO   ", "501 5.5.4", Command),
    ("5321 4.1.1.1 HELO", Fresh, "HELO client.test", "250 mx.example.org", Command),
    ("5321 4.1.1.1 HELO with an address literal", Fresh, "HELO [192.0.2.1]", "250 mx.example.org", Command),
    ("5321 4.1.1.1 HELO without a domain: 501", Fresh, "HELO", "501 5.5.4", Command),
    ("5321 4.1.4 EHLO after HELO", HeloOnly, "EHLO client.test", "250 DSN", Command),
    // RFC 5321 §4.1.1.2, §3.3, §4.1.2: MAIL and its reverse-path.
    ("5321 4.1.1.2 MAIL", Greeted, "MAIL FROM:<a@b.test>", "250 2.1.0", Command),
    ("5321 2.4 mail from: in lower case", Greeted, "mail from:<a@b.test>", "250 2.1.0", Command),
    ("5321 4.5.5 null reverse-path <>", Greeted, "MAIL FROM:<>", "250 2.1.0", Command),
    ("5321 4.1.2 path without brackets: 501", Greeted, "MAIL FROM:a@b.test", "501 5.5.4", Command),
    ("5321 4.1.1.2 MAIL without FROM:", Greeted, "MAIL <a@b.test>", "501 5.5.4", Command),
    ("5321 4.1.1.2 MAIL without argument", Greeted, "MAIL", "501 5.5.4", Command),
    ("5321 3.3 space before the colon: 501", Greeted, "MAIL FROM :<a@b.test>", "501 5.5.4", Command),
    ("5321 3.3 space after the colon: Postfix 3.7 accepts it", Greeted, "MAIL FROM: <a@b.test>", "250 2.1.0", Command),
    ("5321 4.1.1.2 parameter without SP before it: 501", Greeted, "MAIL FROM:<a@b.test>SIZE=100", "501 5.5.4", Command),
    ("5321 4.1.2 unterminated path: 501", Greeted, "MAIL FROM:<a@b.test", "501 5.5.4", Command),
    ("5321 4.1.1.3 <postmaster> is a forward-path only: 501", Greeted, "MAIL FROM:<postmaster>", "501 5.1.7", Command),
    ("5321 4.1.2 mailbox without a domain: 501 5.1.7", Greeted, "MAIL FROM:<foo>", "501 5.1.7", Command),
    ("5321 4.1.2 unquoted SP in a local part: 501 5.1.7", Greeted, "MAIL FROM:<a b@c.test>", "501 5.1.7", Command),
    ("5321 4.1.2 local part with a leading dot: 501 5.1.7", Greeted, "MAIL FROM:<.a@b.test>", "501 5.1.7", Command),
    ("5321 4.1.2 local part with two dots in a row: 501 5.1.7", Greeted, "MAIL FROM:<a..b@b.test>", "501 5.1.7", Command),
    ("5321 4.1.2 domain with an empty label: 501 5.1.7", Greeted, "MAIL FROM:<a@b..test>", "501 5.1.7", Command),
    ("5321 4.1.2 domain label starting with a hyphen: 501 5.1.7", Greeted, "MAIL FROM:<a@-b.test>", "501 5.1.7", Command),
    ("5321 4.1.2 mailbox with an empty domain: 501 5.1.7", Greeted, "MAIL FROM:<a@>", "501 5.1.7", Command),
    ("5321 4.1.2 quoted local part with SP (qtextSMTP)", Greeted, "MAIL FROM:<\"john doe\"@c.test>", "250 2.1.0", Command),
    ("5321 4.1.2 quoted-pairSMTP in a local part", Greeted, "MAIL FROM:<\"a\\\"b\"@c.test>", "250 2.1.0", Command),
    ("5321 4.1.2 quoted local part with > inside", Greeted, "MAIL FROM:<\"a>b\"@c.test>", "250 2.1.0", Command),
    ("5321 4.1.2 unterminated quoted string: 501", Greeted, "MAIL FROM:<\"ab@c.test>", "501 5.5.4", Command),
    ("5321 4.1.3 IPv4 address literal", Greeted, "MAIL FROM:<a@[192.0.2.7]>", "250 2.1.0", Command),
    ("5321 4.1.3 IPv6 address literal", Greeted, "MAIL FROM:<a@[IPv6:2001:db8::7]>", "250 2.1.0", Command),
    ("5321 4.1.3 IPv6v4-comp address literal", Greeted, "MAIL FROM:<a@[IPv6:2001:db8::192.0.2.1]>", "250 2.1.0", Command),
    ("5321 4.1.3 IPv4-mapped IPv6 literal", Greeted, "MAIL FROM:<a@[IPv6:::ffff:192.0.2.1]>", "250 2.1.0", Command),
    ("5321 4.1.3 IPv4 literal with an octet over 255: 501 5.1.7", Greeted, "MAIL FROM:<a@[192.0.2.300]>", "501 5.1.7", Command),
    ("5321 4.1.3 IPv4 literal of three octets: 501 5.1.7", Greeted, "MAIL FROM:<a@[192.0.2]>", "501 5.1.7", Command),
    ("5321 4.1.3 IPv6 literal without its tag: 501 5.1.7", Greeted, "MAIL FROM:<a@[2001:db8::7]>", "501 5.1.7", Command),
    ("5321 4.1.3 IPv6 literal that is no address: 501 5.1.7", Greeted, "MAIL FROM:<a@[IPv6:2001:db8::zz]>", "501 5.1.7", Command),
    ("5321 4.1.3 unregistered literal tag: 501 5.1.7", Greeted, "MAIL FROM:<a@[x-tag:abc]>", "501 5.1.7", Command),
    ("5321 4.1.3 unterminated literal: 501 5.1.7", Greeted, "MAIL FROM:<a@[192.0.2.7>", "501 5.1.7", Command),
    ("5321 4.5.3.1.2 domain of 253 octets", Greeted, "MAIL FROM:<a@{63*d}.{63*d}.{63*d}.{61*d}>", "250 2.1.0", Command),
    ("5321 4.5.3.1.2 domain over 255 octets: 501 5.1.7", Greeted, "MAIL FROM:<a@{63*d}.{63*d}.{63*d}.{63*d}.test>", "501 5.1.7", Command),
    ("5321 4.5.3.1.1 local part of 64 octets", Greeted, "MAIL FROM:<{64*a}@b.test>", "250 2.1.0", Command),
    ("5321 4.5.3.1.1 local part over 64 octets: 501 5.1.7", Greeted, "MAIL FROM:<{65*a}@b.test>", "501 5.1.7", Command),
    ("5321 4.1.1.11 unknown MAIL parameter: 555", Greeted, "MAIL FROM:<a@b.test> FOO=bar", "555 5.5.4", Command),
    ("5321 4.1.1.11 unknown MAIL keyword without value: 555", Greeted, "MAIL FROM:<a@b.test> XYZ", "555 5.5.4", Command),
    ("4954 AUTH= without AUTH on offer: 555", Greeted, "MAIL FROM:<a@b.test> AUTH=<>", "555 5.5.4", Command),
    ("5321 4.1.1.2 several parameters", Greeted, "MAIL FROM:<a@b.test> SIZE=100 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x", "250 2.1.0", Command),
    ("8689 4.1 REQUIRETLS outside TLS: 530 5.7.10", Greeted, "MAIL FROM:<a@b.test> REQUIRETLS", "530 5.7.10", Command),
    // RFC 1870: SIZE.
    ("1870 6 SIZE within the limit", Greeted, "MAIL FROM:<a@b.test> SIZE=1000", "250 2.1.0", Command),
    ("1870 6 SIZE exactly the limit", Greeted, "MAIL FROM:<a@b.test> SIZE=10485760", "250 2.1.0", Command),
    ("1870 6 SIZE=0", Greeted, "MAIL FROM:<a@b.test> SIZE=0", "250 2.1.0", Command),
    ("1870 6 SIZE with leading zeros", Greeted, "MAIL FROM:<a@b.test> SIZE=0000010485760", "250 2.1.0", Command),
    ("1870 6 size keyword in lower case", Greeted, "MAIL FROM:<a@b.test> size=100", "250 2.1.0", Command),
    ("1870 6 SIZE over the limit: 552 5.3.4", Greeted, "MAIL FROM:<a@b.test> SIZE=10485761", "552 5.3.4", Command),
    ("1870 6 SIZE of 20 digits: 552 5.3.4", Greeted, "MAIL FROM:<a@b.test> SIZE=99999999999999999999", "552 5.3.4", Command),
    ("1870 6 SIZE of 23 digits: 552 5.3.4, never 250", Greeted, "MAIL FROM:<a@b.test> SIZE={23*9}", "552 5.3.4", Command),
    ("1870 6 SIZE= empty: 501", Greeted, "MAIL FROM:<a@b.test> SIZE=", "501 5.5.4", Command),
    ("1870 6 SIZE without =value: 501", Greeted, "MAIL FROM:<a@b.test> SIZE", "501 5.5.4", Command),
    ("6152 2 BODY without =value: 501", Greeted, "MAIL FROM:<a@b.test> BODY", "501 5.5.4", Command),
    ("3461 4.3 RET without =value: 501", Greeted, "MAIL FROM:<a@b.test> RET", "501 5.5.4", Command),
    ("3461 4.4 ENVID without =value: 501", Greeted, "MAIL FROM:<a@b.test> ENVID", "501 5.5.4", Command),
    ("6531 3.4 SMTPUTF8= with an empty value: 501", Greeted, "MAIL FROM:<a@b.test> SMTPUTF8=", "501 5.5.4", Command),
    ("3461 4.1 NOTIFY without =value: 501", InMail, "RCPT TO:<alice@example.org> NOTIFY", "501 5.5.4", Command),
    ("3461 4.2 ORCPT without =value: 501", InMail, "RCPT TO:<alice@example.org> ORCPT", "501 5.5.4", Command),
    ("1870 6 SIZE=12x: 501", Greeted, "MAIL FROM:<a@b.test> SIZE=12x", "501 5.5.4", Command),
    ("1870 6 SIZE=-1: 501", Greeted, "MAIL FROM:<a@b.test> SIZE=-1", "501 5.5.4", Command),
    // RFC 6152 and RFC 3030 §3: BODY.
    ("6152 2 BODY=7BIT", Greeted, "MAIL FROM:<a@b.test> BODY=7BIT", "250 2.1.0", Command),
    ("6152 2 BODY=8BITMIME", Greeted, "MAIL FROM:<a@b.test> BODY=8BITMIME", "250 2.1.0", Command),
    ("6152 2 body=8bitmime in lower case", Greeted, "MAIL FROM:<a@b.test> body=8bitmime", "250 2.1.0", Command),
    ("3030 3 BODY=BINARYMIME", Greeted, "MAIL FROM:<a@b.test> BODY=BINARYMIME", "250 2.1.0", Command),
    ("6152 2 BODY=junk: 501", Greeted, "MAIL FROM:<a@b.test> BODY=9BIT", "501 5.5.4", Command),
    ("6152 2 BODY= empty: 501", Greeted, "MAIL FROM:<a@b.test> BODY=", "501 5.5.4", Command),
    // RFC 6531: SMTPUTF8.
    ("6531 3.4 SMTPUTF8", Greeted, "MAIL FROM:<a@b.test> SMTPUTF8", "250 2.1.0", Command),
    ("6531 3.4 UTF-8 local part with SMTPUTF8", Greeted, "MAIL FROM:<j\u{f6}rg@b.test> SMTPUTF8", "250 2.1.0", Command),
    ("6531 3.3 UTF-8 domain with SMTPUTF8", Greeted, "MAIL FROM:<a@b\u{fc}cher.test> SMTPUTF8", "250 2.1.0", Command),
    ("6531 3.4 UTF-8 sender without SMTPUTF8: 553 5.6.7", Greeted, "MAIL FROM:<j\u{f6}rg@b.test>", "553 5.6.7", Command),
    ("6531 3.4 UTF-8 domain without SMTPUTF8: 553 5.6.7", Greeted, "MAIL FROM:<a@b\u{fc}cher.test>", "553 5.6.7", Command),
    ("6531 3.4 SMTPUTF8 takes no value: 501", Greeted, "MAIL FROM:<a@b.test> SMTPUTF8=yes", "501 5.5.4", Command),
    // RFC 3461 §4.3, §4.4: RET and ENVID.
    ("3461 4.3 RET=FULL", Greeted, "MAIL FROM:<a@b.test> RET=FULL", "250 2.1.0", Command),
    ("3461 4.3 RET=HDRS", Greeted, "MAIL FROM:<a@b.test> RET=HDRS", "250 2.1.0", Command),
    ("3461 4.3 ret=hdrs in lower case", Greeted, "MAIL FROM:<a@b.test> ret=hdrs", "250 2.1.0", Command),
    ("3461 4.3 RET twice: 501", Greeted, "MAIL FROM:<a@b.test> RET=FULL RET=HDRS", "501 5.5.4", Command),
    ("3461 4.3 RET=ALL: 501", Greeted, "MAIL FROM:<a@b.test> RET=ALL", "501 5.5.4", Command),
    ("3461 4.3 RET= empty: 501", Greeted, "MAIL FROM:<a@b.test> RET=", "501 5.5.4", Command),
    ("3461 4.4 ENVID", Greeted, "MAIL FROM:<a@b.test> ENVID=QQ314159", "250 2.1.0", Command),
    ("3461 4 ENVID with an xtext hexchar", Greeted, "MAIL FROM:<a@b.test> ENVID=QQ+2B1", "250 2.1.0", Command),
    ("3461 4.4 ENVID of 100 characters", Greeted, "MAIL FROM:<a@b.test> ENVID={100*e}", "250 2.1.0", Command),
    ("3461 4.4 ENVID over 100 characters: 501", Greeted, "MAIL FROM:<a@b.test> ENVID={101*e}", "501 5.5.4", Command),
    ("3461 4 ENVID with a bad hexchar: 501", Greeted, "MAIL FROM:<a@b.test> ENVID=a+4g", "501 5.5.4", Command),
    ("3461 4 ENVID with a lower-case hexchar: 501", Greeted, "MAIL FROM:<a@b.test> ENVID=a+2b", "501 5.5.4", Command),
    ("3461 4 ENVID with = (no xchar): 501", Greeted, "MAIL FROM:<a@b.test> ENVID=a=b", "501 5.5.4", Command),
    ("3461 4.4 ENVID= empty: 501", Greeted, "MAIL FROM:<a@b.test> ENVID=", "501 5.5.4", Command),
    ("3461 4.4 ENVID twice: 501", Greeted, "MAIL FROM:<a@b.test> ENVID=a ENVID=b", "501 5.5.4", Command),
    // After HELO there are no service extensions (RFC 5321 §4.1.1.1, §4.1.1.11: 555).
    ("5321 4.1.1.1 MAIL after HELO", HeloOnly, "MAIL FROM:<a@b.test>", "250 2.1.0", Command),
    ("5321 4.1.1.11 SIZE after HELO: 555", HeloOnly, "MAIL FROM:<a@b.test> SIZE=10", "555 5.5.4", Command),
    ("5321 4.1.1.11 SIZE without =value after HELO: not on offer, 555", HeloOnly, "MAIL FROM:<a@b.test> SIZE", "555 5.5.4", Command),
    ("5321 4.1.1.11 BODY=8BITMIME after HELO: 555", HeloOnly, "MAIL FROM:<a@b.test> BODY=8BITMIME", "555 5.5.4", Command),
    ("5321 4.1.1.11 BODY=BINARYMIME after HELO: 555", HeloOnly, "MAIL FROM:<a@b.test> BODY=BINARYMIME", "555 5.5.4", Command),
    ("5321 4.1.1.11 SMTPUTF8 after HELO: 555", HeloOnly, "MAIL FROM:<a@b.test> SMTPUTF8", "555 5.5.4", Command),
    ("5321 4.1.1.11 RET after HELO: 555", HeloOnly, "MAIL FROM:<a@b.test> RET=HDRS", "555 5.5.4", Command),
    ("5321 4.1.1.11 ENVID after HELO: 555", HeloOnly, "MAIL FROM:<a@b.test> ENVID=x", "555 5.5.4", Command),
    ("6531 3.4 UTF-8 sender after HELO: 553 5.6.7", HeloOnly, "MAIL FROM:<j\u{f6}rg@b.test>", "553 5.6.7", Command),
    ("3030 2 BDAT after HELO: CHUNKING not negotiated, 502", HeloOnly, "BDAT 0 LAST", "502 5.5.1", Command),
    ("5321 4.1.1.3 RCPT after HELO", HeloMail, "RCPT TO:<alice@example.org>", "250 2.1.5", Command),
    ("5321 4.1.1.11 NOTIFY after HELO: 555", HeloMail, "RCPT TO:<alice@example.org> NOTIFY=NEVER", "555 5.5.4", Command),
    ("5321 4.1.1.11 ORCPT after HELO: 555", HeloMail, "RCPT TO:<alice@example.org> ORCPT=rfc822;a@b.test", "555 5.5.4", Command),
    // RFC 5321 §4.1.1.3, §4.1.2: RCPT and its forward-path.
    ("5321 4.1.1.3 RCPT", InMail, "RCPT TO:<alice@example.org>", "250 2.1.5", Open),
    ("5321 2.4 rcpt to: in lower case", InMail, "rcpt to:<alice@example.org>", "250 2.1.5", Open),
    ("5321 4.1.1.3 <postmaster> without a domain", InMail, "RCPT TO:<postmaster>", "250 2.1.5", Open),
    ("5321 4.1.1.3 <PostMaster> in any case", InMail, "RCPT TO:<PostMaster>", "250 2.1.5", Open),
    ("5321 4.5.1 postmaster@ a domain of ours", InMail, "RCPT TO:<postmaster@example.org>", "250 2.1.5", Open),
    ("5321 4.1.1.3 <> is no forward-path: 501 5.1.3", InMail, "RCPT TO:<>", "501 5.1.3", Command),
    ("5321 4.1.2 forward-path without brackets: 501", InMail, "RCPT TO:alice@example.org", "501 5.5.4", Command),
    ("5321 4.1.1.3 RCPT without TO:", InMail, "RCPT <alice@example.org>", "501 5.5.4", Command),
    ("5321 3.3 RCPT with a space before the colon: 501", InMail, "RCPT TO :<alice@example.org>", "501 5.5.4", Command),
    ("5321 4.1.1.3 RCPT parameter without SP: 501", InMail, "RCPT TO:<alice@example.org>NOTIFY=NEVER", "501 5.5.4", Command),
    ("5321 4.1.1.11 unknown RCPT parameter: 555", InMail, "RCPT TO:<alice@example.org> XYZ=1", "555 5.5.4", Command),
    ("5321 4.2.2 unknown local user: 550 5.1.1", InMail, "RCPT TO:<carol@example.org>", "550 5.1.1", Command),
    ("5321 3.6.2 relaying refused: Postfix 3.7 reject_unauth_destination, 554 5.7.1", InMail, "RCPT TO:<x@elsewhere.test>", "554 5.7.1", Command),
    ("5321 4.1.2 quoted local part with SP: valid, unknown here", InMail, "RCPT TO:<\"john doe\"@example.org>", "550 5.1.1 <\"john doe\"@example.org>", Command),
    ("5321 2.4 domains are case-insensitive", InMail, "RCPT TO:<bob@EXAMPLE.ORG>", "250 2.1.5", Open),
    ("5321 2.4 local part of an account in another case: Postfix 3.7 matches it", InMail, "RCPT TO:<BOB@example.org>", "250 2.1.5", Open),
    ("5321 4.1.2 quoted local part naming an account", InMail, "RCPT TO:<\"bob\"@example.org>", "250 2.1.5", Open),
    ("1123 5.2.17 literal of our own address is local", InMail, "RCPT TO:<alice@[198.51.100.1]>", "250 2.1.5", Open),
    ("5321 4.1.3 literal of another host: the relay rule, 554 5.7.1", InMail, "RCPT TO:<carol@[192.0.2.7]>", "554 5.7.1", Command),
    ("5321 4.1.3 IPv6 literal of another host: 554 5.7.1", InMail, "RCPT TO:<carol@[IPv6:2001:db8::7]>", "554 5.7.1", Command),
    ("5321 4.1.3 bad IPv4 literal: 501 5.1.3", InMail, "RCPT TO:<carol@[300.0.0.1]>", "501 5.1.3", Command),
    ("5321 4.1.1.3 source route: accepted and ignored", InMail, "RCPT TO:<@a.test,@b.test:bob@example.org>", "250 2.1.5", Open),
    ("5321 4.1.1.3 source route with a bad hop: 501 5.1.3", InMail, "RCPT TO:<@a..test:bob@example.org>", "501 5.1.3", Command),
    ("5321 4.5.3.1.2 RCPT domain over 255 octets: 501 5.1.3", InMail, "RCPT TO:<a@{63*d}.{63*d}.{63*d}.{63*d}.test>", "501 5.1.3", Command),
    ("5321 4.5.3.1.1 RCPT local part over 64 octets: 501 5.1.3", InMail, "RCPT TO:<{65*a}@example.org>", "501 5.1.3", Command),
    ("6531 3.4 UTF-8 recipient without SMTPUTF8: 553 5.6.7", InMail, "RCPT TO:<j\u{f6}rg@example.org>", "553 5.6.7", Command),
    ("6531 3.4 UTF-8 recipient with SMTPUTF8: valid, unknown here", Utf8Mail, "RCPT TO:<j\u{f6}rg@example.org>", "550 5.1.1", Command),
    ("6531 3.3 UTF-8 domain with SMTPUTF8: the relay rule", Utf8Mail, "RCPT TO:<a@b\u{fc}cher.test>", "554 5.7.1", Command),
    ("6531 3.4 ASCII recipient with SMTPUTF8", Utf8Mail, "RCPT TO:<bob@example.org>", "250 2.1.5", Open),
    // RFC 3461 §4.1, §4.2: NOTIFY and ORCPT.
    ("3461 4.1 NOTIFY=NEVER", InMail, "RCPT TO:<alice@example.org> NOTIFY=NEVER", "250 2.1.5", Open),
    ("3461 4.1 NOTIFY=SUCCESS,FAILURE,DELAY", InMail, "RCPT TO:<alice@example.org> NOTIFY=SUCCESS,FAILURE,DELAY", "250 2.1.5", Open),
    ("3461 4.1 NOTIFY=FAILURE", InMail, "RCPT TO:<alice@example.org> NOTIFY=FAILURE", "250 2.1.5", Open),
    ("3461 4.1 notify=delay in lower case", InMail, "RCPT TO:<alice@example.org> notify=delay", "250 2.1.5", Open),
    ("3461 4.1 NEVER with another value: 501", InMail, "RCPT TO:<alice@example.org> NOTIFY=NEVER,SUCCESS", "501 5.5.4", Command),
    ("3461 4.1 another value with NEVER: 501", InMail, "RCPT TO:<alice@example.org> NOTIFY=SUCCESS,NEVER", "501 5.5.4", Command),
    ("3461 4.1 NOTIFY=SOMETIMES: 501", InMail, "RCPT TO:<alice@example.org> NOTIFY=SOMETIMES", "501 5.5.4", Command),
    ("3461 4.1 NOTIFY= empty: 501", InMail, "RCPT TO:<alice@example.org> NOTIFY=", "501 5.5.4", Command),
    ("3461 4.1 NOTIFY twice: 501", InMail, "RCPT TO:<alice@example.org> NOTIFY=NEVER NOTIFY=DELAY", "501 5.5.4", Command),
    ("3461 4.2 ORCPT=rfc822;addr", InMail, "RCPT TO:<alice@example.org> ORCPT=rfc822;alice@example.org", "250 2.1.5", Open),
    ("3461 4.2 ORCPT type in upper case, xtext hexchar", InMail, "RCPT TO:<alice@example.org> ORCPT=RFC822;Alice+20A@example.org", "250 2.1.5", Open),
    ("3461 4.2 ORCPT without an address type: 501", InMail, "RCPT TO:<alice@example.org> ORCPT=alice@example.org", "501 5.5.4", Command),
    ("3461 4.2 ORCPT with a bad hexchar: 501", InMail, "RCPT TO:<alice@example.org> ORCPT=rfc822;a+zzb@example.org", "501 5.5.4", Command),
    ("3461 4.2 ORCPT with an empty address: 501", InMail, "RCPT TO:<alice@example.org> ORCPT=rfc822;", "501 5.5.4", Command),
    ("3461 4.2 NOTIFY and ORCPT together", InMail, "RCPT TO:<alice@example.org> NOTIFY=FAILURE ORCPT=rfc822;alice@example.org", "250 2.1.5", Open),
    // RFC 5321 §3.3, §4.1.4: sequence inside a transaction.
    ("5321 4.1.4 second MAIL in a transaction: 503", InMail, "MAIL FROM:<b@c.test>", "503 5.5.1", Command),
    ("5321 4.1.4 RCPT without MAIL: 503", Greeted, "RCPT TO:<alice@example.org>", "503 5.5.1", Command),
    ("5321 4.1.4 DATA without MAIL: 503", Greeted, "DATA", "503 5.5.1", Command),
    ("5321 3.3 DATA without a RCPT: 503 or 554; Postfix 3.7: 554", InMail, "DATA", "554 5.5.1", Command),
    ("5321 4.1.1.5 RSET ends the transaction", InMail, "RSET", "250 2.0.0 Ok", NoTransaction),
    ("5321 4.1.1.5 RSET ends a transaction with recipients", InRcpt, "RSET", "250 2.0.0 Ok", NoTransaction),
    ("5321 4.1.1.5 RSET x: 501, the transaction stays", InRcpt, "RSET x", "501 5.5.4", Open),
    ("5321 4.1.4 EHLO ends the transaction", InRcpt, "EHLO again.test", "250 DSN", NoTransaction),
    ("5321 4.1.4 HELO ends the transaction", InRcpt, "HELO again.test", "250 mx.example.org", NoTransaction),
    ("5321 4.1.1.9 NOOP leaves the transaction alone", InRcpt, "NOOP", "250 2.0.0 Ok", Open),
    ("5321 3.5.3 VRFY leaves the transaction alone", InRcpt, "VRFY bob", "252 2.5.0", Open),
    ("5321 4.1.1.8 HELP leaves the transaction alone", InRcpt, "HELP", "214 2.0.0", Open),
    ("5321 4.1.4 MAIL inside a transaction: 503, the transaction stays", InRcpt, "MAIL FROM:<b@c.test>", "503 5.5.1", Open),
    ("5321 4.5.3.1.10 the same RCPT again: accepted", InRcpt, "RCPT TO:<alice@example.org>", "250 2.1.5", Open),
    ("5321 4.1.1.10 QUIT inside a transaction", InRcpt, "QUIT", "221 2.0.0", Closed),
    // RFC 5321 §4.1.1.4: DATA.
    ("5321 4.1.1.4 DATA", InRcpt, "DATA", "354 ", Content),
    ("5321 2.4 data in lower case", InRcpt, "data", "354 ", Content),
    ("5321 4.1.1.4 DATA takes no argument: 501, the transaction stays", InRcpt, "DATA x", "501 5.5.4", Open),
    // RFC 3030: BDAT, CHUNKING and BINARYMIME.
    ("3030 2 BDAT 0 LAST ends an empty message", InRcpt, "BDAT 0 LAST", "250 2.0.0 Ok: queued as Q1", Command),
    ("3030 2 BDAT n LAST", InRcpt, "BDAT 5 LAST\r\nabc", "250 2.0.0 Ok: queued as Q1", Command),
    ("3030 2 bdat in lower case, last too", InRcpt, "bdat 5 last\r\nabc", "250 2.0.0 Ok: queued as Q1", Command),
    ("3030 2 BDAT n: a chunk, the transaction goes on", InRcpt, "BDAT 5\r\nabc", "250 2.0.0 Ok: 5 octets received", Open),
    ("3030 2 BDAT with command-like octets: they are data", InRcpt, "BDAT 6\r\nQUIT", "250 2.0.0 Ok: 6 octets received", Open),
    ("3030 2 BDAT 0 (not LAST): a valid empty chunk (Postfix 3.7 refuses it 551 as abuse)", InRcpt, "BDAT 0", "250 2.0.0 Ok: 0 octets received", Open),
    ("3030 2 BDAT n LAST with one word too many: 501, its chunk is read", InRcpt, "BDAT 5 LAST x\r\nabc", "501 5.5.4", Open),
    ("3030 2 BDAT with a signed size: 501", InRcpt, "BDAT +5", "501 5.5.4", Open),
    ("3030 2 BDAT without a size: 501", InRcpt, "BDAT", "501 5.5.4", Open),
    ("3030 2 BDAT with a size that is no number: 501", InRcpt, "BDAT x LAST", "501 5.5.4", Open),
    ("3030 2 BDAT with a negative size: 501", InRcpt, "BDAT -1", "501 5.5.4", Open),
    ("3030 2 BDAT with a size past any integer: 501", InRcpt, "BDAT {23*9} LAST", "501 5.5.4", Open),
    ("3030 2 BDAT with a word other than LAST: 501, its chunk is read", InRcpt, "BDAT 3 FIRST\r\nx", "501 5.5.4", Open),
    ("3030 2 BDAT without MAIL: 503, the chunk is read", Greeted, "BDAT 6\r\nQUIT", "503 5.5.1", Command),
    ("3030 2 BDAT without RCPT: 554 as for DATA, the chunk is read", InMail, "BDAT 6 LAST\r\nQUIT", "554 5.5.1", Command),
    ("3030 3 DATA after BDAT: 503, the transaction stays", InBdat, "DATA", "503 5.5.1", Open),
    ("3030 2 BDAT 0 LAST after a chunk", InBdat, "BDAT 0 LAST", "250 2.0.0 Ok: queued as Q1", Command),
    ("3030 2 BDAT n LAST after a chunk", InBdat, "BDAT 3 LAST\r\nz", "250 2.0.0 Ok: queued as Q1", Command),
    ("3030 2 octets are counted across chunks", InBdat, "BDAT 5\r\nabc", "250 2.0.0 Ok: 9 octets received", Open),
    ("3030 2 MAIL during BDAT: 503", InBdat, "MAIL FROM:<b@c.test>", "503 5.5.1", Open),
    ("3030 2 RCPT after BDAT: RFC 3030 is silent; Postfix 3.7 says 503", InBdat, "RCPT TO:<bob@example.org>", "503 5.5.1", Open),
    ("3030 2 BDAT after BDAT LAST: 503, its chunk is read", AfterLast, "BDAT 6\r\nQUIT", "503 5.5.1", Command),
    ("3030 2 DATA after BDAT LAST: no transaction, 503", AfterLast, "DATA", "503 5.5.1", Command),
    ("3030 2 MAIL after BDAT LAST: the next transaction", AfterLast, "MAIL FROM:<b@c.test>", "250 2.1.0", Command),
    ("5321 4.5.3.1.8 the 101st recipient: 452 4.5.3 (Postfix 3.7)", FullRcpts, "RCPT TO:<bob@example.org>", "452 4.5.3", Open),
    ("3030 2 RSET during BDAT ends the transaction", InBdat, "RSET", "250 2.0.0 Ok", NoTransaction),
    ("3030 2 NOOP during BDAT", InBdat, "NOOP", "250 2.0.0 Ok", Open),
    ("3030 3 BODY=BINARYMIME with DATA: 503", Binary, "DATA", "503 5.5.1", Open),
    ("3030 3 BODY=BINARYMIME with BDAT, NUL and bare LF inside", Binary, "BDAT 6 LAST\r\na\0\nb", "250 2.0.0 Ok: queued as Q1", Command),
];

/// `{N*c}` expanded (see the module docs).
fn expand(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').expect("a closing brace") + open;
        let (n, c) = rest[open + 1..close]
            .split_once('*')
            .expect("{N*c} in a row");
        out.push_str(&c.repeat(n.parse().expect("a count in {N*c}")));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Brings a fresh client to `setup`; a step whose reply is not the expected one is an error.
fn set_up(setup: Setup) -> Result<Client, String> {
    let ehlo = ("EHLO client.test", "250 DSN");
    let helo = ("HELO client.test", "250 mx.example.org");
    let mail = ("MAIL FROM:<sender@remote.test>", "250 2.1.0 Ok");
    let rcpt = ("RCPT TO:<alice@example.org>", "250 2.1.5 Ok");
    let steps: Vec<(&str, &str)> = match setup {
        Fresh => vec![],
        Greeted => vec![ehlo],
        HeloOnly => vec![helo],
        HeloMail => vec![helo, mail],
        InMail => vec![ehlo, mail],
        Utf8Mail => vec![
            ehlo,
            ("MAIL FROM:<sender@remote.test> SMTPUTF8", "250 2.1.0 Ok"),
        ],
        InRcpt => vec![ehlo, mail, rcpt],
        Binary => vec![
            ehlo,
            (
                "MAIL FROM:<sender@remote.test> BODY=BINARYMIME",
                "250 2.1.0 Ok",
            ),
            rcpt,
        ],
        InBdat => vec![
            ehlo,
            mail,
            rcpt,
            ("BDAT 4\r\nA: b", "250 2.0.0 Ok: 4 octets received"),
        ],
        AfterLast => vec![
            ehlo,
            mail,
            rcpt,
            ("BDAT 5 LAST\r\nabc\r\n", "250 2.0.0 Ok: queued as Q1"),
        ],
        FullRcpts => [ehlo, mail].into_iter().chain([rcpt; 100]).collect(),
    };
    let mut c = Client::new();
    for (line, want) in steps {
        let got = c.send(if line.starts_with("BDAT") {
            line.to_string()
        } else {
            format!("{line}\r\n")
        });
        if got.last().map(String::as_str) != Some(want) {
            return Err(format!(
                "setup {setup:?}: sent {line:?}, expected {want:?}, got {got:?}"
            ));
        }
    }
    Ok(c)
}

/// The row's reply: the lines of exactly one reply, all with the same code, ending in a
/// final line (`ddd ` or `ddd` alone). `[close]` is split off.
fn one_reply(got: &[String]) -> Result<(&[String], bool), String> {
    let (lines, closed) = match got.split_last() {
        Some((last, lines)) if last == "[close]" => (lines, true),
        _ => (got, false),
    };
    let code = lines.first().map(|l| &l[..l.len().min(3)]);
    let finals = lines
        .iter()
        .filter(|l| l.len() == 3 || l.as_bytes()[3] == b' ');
    let well_formed = !lines.is_empty()
        && finals.count() == 1
        && lines.iter().all(|l| Some(&l[..l.len().min(3)]) == code)
        && lines
            .last()
            .is_some_and(|l| l.len() == 3 || l.as_bytes()[3] == b' ');
    match well_formed {
        true => Ok((lines, closed)),
        false => Err(format!("not one reply: {got:?}")),
    }
}

/// RFC 2034 §3: with ENHANCEDSTATUSCODES, every 2xx/4xx/5xx reply carries an enhanced code
/// of the same class, except the greeting and the replies to HELO and EHLO (and 354, which
/// is no 2xx/4xx/5xx). `None` when the reply is as it should be.
fn enhanced_code_missing(verb: &str, last: &str) -> Option<String> {
    let code = last.as_bytes().first().copied()?;
    if matches!(verb, "EHLO" | "HELO") || last.starts_with("354") {
        return None;
    }
    let text = last.get(4..).unwrap_or_default();
    let enhanced = text.split(' ').next().unwrap_or_default();
    let parts: Vec<&str> = enhanced.split('.').collect();
    let ok = parts.len() == 3
        && parts[0].as_bytes() == [code]
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    (!ok).then(|| format!("no enhanced status code of class {}", char::from(code)))
}

/// Checks `then` on the client after the row's reply; `None` when it holds.
fn check_then(c: &mut Client, then: Then, closed: bool) -> Option<String> {
    if closed != matches!(then, Closed) {
        return Some(format!("closed: {closed}, expected {then:?}"));
    }
    let (probe, want): (&str, &str) = match then {
        Closed => return (!c.send("NOOP\r\n").is_empty()).then(|| "input read after close".into()),
        Command => ("NOOP\r\n", "250 2.0.0 Ok"),
        NoTransaction => (
            "RCPT TO:<alice@example.org>\r\n",
            "503 5.5.1 Error: need MAIL command",
        ),
        Open => ("BDAT 0 LAST\r\n", "250 2.0.0 Ok: queued as Q"),
        Content => ("NOOP\r\n.\r\n", "250 2.0.0 Ok: queued as Q"),
    };
    let got = c.send(probe);
    let single = got.len() == 1 && got[0].starts_with(want);
    if !single {
        return Some(format!(
            "then {then:?}: sent {probe:?}, expected {want:?}, got {got:?}"
        ));
    }
    if matches!(then, Content) && content_of(c.delivered.last()?) != "NOOP\r\n" {
        return Some("then Content: the NOOP was not stored as content".into());
    }
    None
}

/// Runs one row; every way it fails, as text.
fn run_row(&(name, setup, line, expect, then): &Row) -> Vec<String> {
    let mut c = match set_up(setup) {
        Ok(c) => c,
        Err(e) => return vec![format!("{name}: {e}")],
    };
    let mut wire = expand(line);
    if !wire.ends_with('\n') {
        wire.push_str("\r\n");
    }
    let got = c.send(&wire);
    let (lines, closed) = match one_reply(&got) {
        Ok(r) => r,
        Err(e) => return vec![format!("{name}: sent {wire:?}, expected {expect:?}, {e}")],
    };
    let last = lines.last().map(String::as_str).unwrap_or_default();
    let mut failures = Vec::new();
    if !last.starts_with(expect) {
        failures.push(format!("sent {wire:?}, expected {expect:?}, got {got:?}"));
    }
    let verb = super::super::commands::verb(wire.as_bytes());
    failures.extend(enhanced_code_missing(&verb, last));
    failures.extend(check_then(&mut c, then, closed));
    failures
        .into_iter()
        .map(|f| format!("{name}: {f}"))
        .collect()
}

#[test]
fn conformance_sweep() {
    assert!(ROWS.len() >= 120, "{} rows", ROWS.len());
    let failures: Vec<String> = ROWS.iter().flat_map(run_row).collect();
    assert!(
        failures.is_empty(),
        "{} of {} rows fail:\n{}",
        failures.len(),
        ROWS.len(),
        failures.join("\n")
    );
}

#[test]
fn every_row_name_is_unique() {
    let mut names: Vec<&str> = ROWS.iter().map(|r| r.0).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(names.len(), before, "duplicate row names");
}

#[test]
fn the_sweep_reports_a_wrong_row() {
    // The runner itself can fail: a wrong expectation, a wrong follow-up state, an answer
    // that is no single reply, a missing enhanced code.
    let wrong: Row = ("wrong code", Fresh, "NOOP", "500", Command);
    assert_eq!(run_row(&wrong).len(), 1);
    let wrong: Row = ("wrong then", Fresh, "QUIT", "221", Command);
    assert!(run_row(&wrong)[0].contains("closed: true"));
    let wrong: Row = ("stays in data", InRcpt, "DATA", "354", Command);
    assert!(run_row(&wrong)[0].contains("then Command"));
    assert!(one_reply(&["250 a".into(), "250 b".into()]).is_err());
    assert!(one_reply(&["250-a".into(), "251 b".into()]).is_err());
    assert!(enhanced_code_missing("NOOP", "250 Ok").is_some());
    assert!(enhanced_code_missing("NOOP", "250 5.0.0 Ok").is_some());
    assert!(enhanced_code_missing("HELO", "250 mx.example.org").is_none());
    assert_eq!(expand("a{3*b}c{2*d}"), "abbbcdd");
}
