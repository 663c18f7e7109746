//! The async driver: connects one [`Session`] to an Env byte stream.
//!
//! It only moves bytes and time: reads feed the session, replies are batched until the
//! session needs more input (so a pipelined batch of commands gets one write of replies,
//! RFC 2920), deliveries go to the store, and the idle deadline is enforced on the Env clock.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::env::{timeout_at, Env};
use crate::mail::Deliver;

use super::session::{Output, PeerInfo, Session, SessionConfig};

/// Read buffer: small while the client sends commands (≤ 512 octets each), so a thousand
/// idle sessions cost little; doubled whenever a read fills it (a pipelined batch, DATA)
/// up to [`READ_BUF_MAX`], so bulk data still arrives in big reads.
const READ_BUF_START: usize = 1024;
const READ_BUF_MAX: usize = 64 * 1024;

/// Runs one SMTP session to its end. Never panics on input; I/O errors end the session.
pub async fn run_session<E: Env, D: Deliver>(
    env: E,
    mut stream: E::Stream,
    peer: PeerInfo,
    config: Arc<SessionConfig>,
    sink: D,
    conn: u64,
) {
    let tag = format!("#{conn}");
    env.trace("smtp", format_args!("{tag} connect from {}", peer.remote));
    let mut session = Session::new(config, peer, env.now());
    let mut out = Vec::with_capacity(1024);
    let greeting = session.greeting();
    trace_reply(&env, &tag, &greeting);
    greeting.write_to(&mut out);
    let mut buf = vec![0u8; READ_BUF_START];
    loop {
        let output = session.poll(env.now());
        for line in session.take_log() {
            env.trace("smtp", format_args!("{tag} C: {line}"));
        }
        match output {
            Output::Reply(reply) => {
                trace_reply(&env, &tag, &reply);
                reply.write_to(&mut out);
            }
            Output::Deliver(tx) => {
                let result = sink.deliver(&tx.envelope, &tx.message).await;
                session.delivered(result);
            }
            Output::Close => {
                let _ = flush(&mut stream, &mut out).await;
                let _ = stream.shutdown().await;
                env.trace("smtp", format_args!("{tag} closed"));
                return;
            }
            Output::NeedInput => {
                if flush(&mut stream, &mut out).await.is_err() {
                    session.closed_by_peer();
                    env.trace("smtp", format_args!("{tag} write failed; session dropped"));
                    return;
                }
                match timeout_at(&env, session.deadline(), stream.read(&mut buf)).await {
                    None => {
                        let reply = session.timed_out();
                        trace_reply(&env, &tag, &reply);
                        reply.write_to(&mut out);
                    }
                    Some(Ok(0)) | Some(Err(_)) => {
                        session.closed_by_peer();
                        for line in session.take_log() {
                            env.trace("smtp", format_args!("{tag} C: {line}"));
                        }
                        env.trace("smtp", format_args!("{tag} client disconnected"));
                        return;
                    }
                    Some(Ok(n)) => {
                        session.push_input(&buf[..n]);
                        if n == buf.len() && buf.len() < READ_BUF_MAX {
                            buf.resize(buf.len() * 2, 0);
                        }
                    }
                }
            }
        }
    }
}

fn trace_reply<E: Env>(env: &E, tag: &str, reply: &super::Reply) {
    for line in reply.wire_lines() {
        env.trace("smtp", format_args!("{tag} S: {line}"));
    }
}

async fn flush<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    out: &mut Vec<u8>,
) -> std::io::Result<()> {
    if !out.is_empty() {
        stream.write_all(out).await?;
        stream.flush().await?;
        out.clear();
    }
    Ok(())
}
