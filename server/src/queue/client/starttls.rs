//! STARTTLS on the outbound session (RFC 3207): the upgrade itself; what the queue does
//! when it does not work out is the runner's (`queue/runner/session.rs`).

use std::future::Future;
use std::io;

use tokio::io::{AsyncRead, AsyncWrite};

use super::*;

/// The result of [`Client::starttls`].
#[derive(Debug)]
pub enum StartTls<E: Env, S, T> {
    /// 220, handshake done, EHLO sent again over TLS (capabilities are the new ones).
    Secured(Client<E, T>),
    /// The server refused STARTTLS (4xx/5xx other than 421); the session goes on in
    /// plaintext if the caller's policy allows.
    Refused { client: Client<E, S>, reply: Reply },
}

impl<E: Env, S: AsyncRead + AsyncWrite + Unpin> Client<E, S> {
    /// STARTTLS (RFC 3207): on 220, `handshake` turns the plaintext stream into a TLS one
    /// (within `command_timeout`), and EHLO is sent again, since capabilities may differ over
    /// TLS and what was said in plaintext must be forgotten (RFC 3207 §4.2).
    ///
    /// Call it right after [`Client::open`] when [`Capabilities::starttls`] is set. If the
    /// server sent anything after its 220 the session fails: those plaintext octets could
    /// otherwise be taken for TLS-protected replies (the client side of CVE-2011-0411).
    pub async fn starttls<T, F, Fut>(
        mut self,
        handshake: F,
    ) -> Result<StartTls<E, S, T>, SessionFailure>
    where
        T: AsyncRead + AsyncWrite + Unpin,
        F: FnOnce(S) -> Fut,
        Fut: Future<Output = io::Result<T>>,
    {
        let reply = match self.command(Stage::StartTls, "STARTTLS").await {
            Ok(reply) => reply,
            Err(error) => return Err(self.into_failure(error, true).await),
        };
        match reply.code / 100 {
            2 => {}
            4 | 5 if reply.code != 421 => {
                return Ok(StartTls::Refused {
                    client: self,
                    reply,
                })
            }
            4 | 5 => {
                let error = SessionError::Rejected {
                    stage: Stage::StartTls,
                    reply,
                };
                return Err(self.into_failure(error, true).await);
            }
            _ => {
                let error = unexpected(Stage::StartTls, &reply);
                return Err(self.into_failure(error, true).await);
            }
        }
        if !self.reader.is_drained() {
            let error = SessionError::Protocol {
                stage: Stage::StartTls,
                detail: "data received after the STARTTLS reply, before TLS".into(),
            };
            return Err(self.into_failure(error, true).await);
        }
        let Client {
            env,
            stream,
            cfg,
            caps,
            mut transcript,
            rbuf,
            ..
        } = self;
        let deadline = env.now().plus(cfg.command_timeout);
        let tls = match timeout_at(&env, deadline, handshake(stream)).await {
            Some(Ok(tls)) => tls,
            failed => {
                let error = match failed {
                    Some(Err(e)) => SessionError::Tls(e.to_string()),
                    _ => SessionError::Timeout {
                        stage: Stage::TlsHandshake,
                    },
                };
                return Err(SessionFailure {
                    error,
                    per_recipient: Vec::new(),
                    peer_capabilities: Some(caps),
                    transcript,
                });
            }
        };
        transcript.push("note: TLS handshake complete".into());
        let mut client = Client {
            env,
            stream: tls,
            cfg,
            reader: ReplyReader::default(),
            caps: Capabilities::default(),
            transcript,
            state: State::Idle,
            rbuf,
        };
        match client.hello().await {
            Ok(()) => Ok(StartTls::Secured(client)),
            Err(error) => Err(client.into_failure(error, false).await),
        }
    }
}
