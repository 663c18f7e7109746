//! STARTTLS (RFC 3207) on the session's side; the handshake itself is the driver's.
//!
//! - Offered only by a listener that can do TLS and only before TLS is active; otherwise
//!   the command is 502 as if unknown (not offered) or `554 5.5.1 Error: TLS already active`
//!   (Postfix's reply to a second STARTTLS).
//! - `220 2.0.0 Ready to start TLS`, then [`Output::StartTls`]. Whatever the client sent
//!   after the STARTTLS line before the handshake is plaintext an attacker in the middle may
//!   have injected: it is discarded, never executed (CVE-2011-0411, the "STARTTLS command
//!   injection" that hit Postfix and others in 2011).
//! - Once TLS is up the session forgets everything the client told it (RFC 3207 §4.2): the
//!   greeting, the transaction, an AUTH. No new 220 is sent; the client starts with EHLO.
//! - A failed handshake closes the connection: there is no plaintext to fall back to.

use super::{Awaiting, Output, Phase, Reply, Session};

impl Session {
    pub(super) fn starttls(&mut self, text: &[u8]) {
        if !text.trim_ascii().eq_ignore_ascii_case(b"STARTTLS") {
            return self.error(Reply::new(501, (5, 5, 4), "Syntax: STARTTLS"));
        }
        if self.tls {
            return self.error(Reply::new(554, (5, 5, 1), "Error: TLS already active"));
        }
        self.reply(Reply::new(220, (2, 0, 0), "Ready to start TLS"));
        // The caller (`next_line`) discards the rest of the buffer once this line is done.
        self.ask(Awaiting::Tls, Output::StartTls);
    }

    /// The handshake completed: a fresh session over TLS.
    pub(super) fn tls_up(&mut self) {
        self.discard_input("after STARTTLS");
        self.tls = true;
        self.greeted = None;
        self.reset_transaction();
        self.authenticated = None;
        self.client_changed();
        self.phase = Phase::Command;
    }

    pub(super) fn tls_failed(&mut self) {
        self.log.push("[TLS handshake failed]".into());
        self.envelope = None;
        self.close();
    }
}
