//! AUTH LOGIN (draft-murchison-sasl-login-00): the user name and the password, each in its
//! own base64 response after its own prompt. Obsolete, but still what Outlook, many phones
//! and printers send, so submission servers (Postfix with Dovecot SASL, Exim) offer it next
//! to PLAIN. The prompts are the customary `Username:` and `Password:`, base64-encoded.

use super::super::{AuthMechanism, Credentials, Phase, Reply, Session};
use super::{bad_credentials, cannot_decode, decode};

/// `334 Username:` and `334 Password:`, base64, as every implementation sends them.
const USERNAME: &str = "VXNlcm5hbWU6";
const PASSWORD: &str = "UGFzc3dvcmQ6";

impl Session {
    /// `AUTH LOGIN [user name]`: prompt for what is missing.
    pub(in super::super) fn login_start(&mut self, initial: Option<&[u8]>) {
        self.login_user = None;
        match initial {
            None => self.login_prompt(USERNAME),
            Some(user) => self.login_response(user),
        }
    }

    /// One base64 response: the user name (then prompt for the password), or the password
    /// (then hand out the credentials).
    pub(in super::super) fn login_response(&mut self, base64: &[u8]) {
        let Some(decoded) = decode(base64) else {
            self.login_user = None;
            return self.error(cannot_decode());
        };
        let Ok(text) = String::from_utf8(decoded) else {
            self.login_user = None;
            return self.error(bad_credentials());
        };
        match self.login_user.take() {
            None => {
                self.login_user = Some(text);
                self.login_prompt(PASSWORD);
            }
            Some(user) if user.is_empty() || text.is_empty() => self.error(bad_credentials()),
            Some(user) => self.check_credentials(Credentials {
                mechanism: AuthMechanism::Login,
                authcid: user,
                authzid: String::new(),
                password: text,
            }),
        }
    }

    fn login_prompt(&mut self, prompt: &str) {
        self.phase = Phase::AuthResponse(AuthMechanism::Login);
        self.reply(Reply::plain(334, prompt));
    }
}
