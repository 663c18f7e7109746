//! The stub resolver every simulated host uses: one query, one answer, mapped onto the
//! server crate's view of DNS (`Record`, `DnsError`).

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use mailsim_server::env::{DnsError, Record, RecordKind};
use turmoil::net::UdpSocket;

use super::server::{chain_end, rcode_name};
use super::{name_to_string, txt_to_string};

/// Sends one query for `name`/`kind` with message id `id` to `server` over simulated UDP and
/// waits for the matching reply or for `timeout` to complete, whichever comes first.
///
/// The caller supplies the id (from the world's seeded randomness) and the timeout (usually
/// a `SimClock` sleep) so that the result is a function of the world alone. There is no
/// retry: retrying is the caller's policy.
///
/// - NOERROR with records of the type (after following the answer's CNAME chain from `name`)
///   → those records: MX sorted by preference then exchange, others in answer order. Names
///   are lower-case without trailing dot; a null MX (RFC 7505) is
///   `Mx { preference: 0, exchange: "" }`.
/// - NOERROR without such records → [`DnsError::NoRecords`].
/// - NXDOMAIN (for the end of the CNAME chain) → [`DnsError::NxDomain`]; so is a `name` that
///   cannot be a DNS name (empty label, label over 63 octets...): it cannot exist.
/// - SERVFAIL, REFUSED or any other RCODE, a timeout, a malformed or truncated reply, a
///   socket error → [`DnsError::Temporary`] with the reason.
///
/// Datagrams from another address, with another id, or answering another question are
/// ignored (a real stub resolver's spoofing defence), so a late reply to an earlier query
/// cannot be taken for this one.
pub async fn query(
    server: SocketAddr,
    name: &str,
    kind: RecordKind,
    id: u16,
    timeout: impl Future<Output = ()>,
) -> Result<Vec<Record>, DnsError> {
    let qname = match super::zone::parse_absolute(name) {
        Ok(n) => n,
        Err(_) => return Err(DnsError::NxDomain),
    };
    let qtype = record_type(kind);

    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(qname.clone(), qtype));
    let bytes = message
        .to_vec()
        .map_err(|e| DnsError::Temporary(format!("cannot encode query: {e}")))?;

    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| DnsError::Temporary(format!("cannot bind a UDP socket: {e}")))?;
    socket
        .send_to(&bytes, server)
        .await
        .map_err(|e| DnsError::Temporary(format!("cannot send to {server}: {e}")))?;

    let reply = async {
        let mut buf = vec![0u8; u16::MAX as usize];
        loop {
            let (len, from) = match socket.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => return Err(DnsError::Temporary(format!("receive failed: {e}"))),
            };
            if from != server {
                continue;
            }
            let response = match Message::from_vec(&buf[..len]) {
                Ok(m) => m,
                Err(e) => return Err(DnsError::Temporary(format!("malformed reply: {e}"))),
            };
            if response.metadata.id != id
                || response.metadata.message_type != MessageType::Response
                || !answers_question(&response, &qname, qtype)
            {
                continue;
            }
            return Ok(response);
        }
    };

    let response = tokio::select! {
        biased;
        r = reply => r?,
        _ = timeout => return Err(DnsError::Temporary(format!("timeout querying {server}"))),
    };
    interpret(&response, &qname, kind)
}

/// Does the reply echo our question? (A reply without a question section is accepted: some
/// servers omit it on errors.)
fn answers_question(response: &Message, qname: &Name, qtype: RecordType) -> bool {
    match response.queries.as_slice() {
        [] => true,
        [q] => q.name() == qname && q.query_type() == qtype,
        _ => false,
    }
}

fn record_type(kind: RecordKind) -> RecordType {
    match kind {
        RecordKind::Mx => RecordType::MX,
        RecordKind::A => RecordType::A,
        RecordKind::Aaaa => RecordType::AAAA,
        RecordKind::Txt => RecordType::TXT,
        RecordKind::Ptr => RecordType::PTR,
    }
}

/// Maps a reply that answers our question onto the server crate's result.
fn interpret(response: &Message, qname: &Name, kind: RecordKind) -> Result<Vec<Record>, DnsError> {
    if response.metadata.truncation {
        return Err(DnsError::Temporary("truncated reply".to_string()));
    }
    match response.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Err(DnsError::NxDomain),
        other => return Err(DnsError::Temporary(rcode_name(other))),
    }
    let end = chain_end(&response.answers, qname);
    let mut records: Vec<Record> = response
        .answers
        .iter()
        .filter(|r| r.name == end)
        .filter_map(|r| convert(&r.data, kind))
        .collect();
    if records.is_empty() {
        return Err(DnsError::NoRecords);
    }
    if kind == RecordKind::Mx {
        // Stable order for equal preferences too, so routing never depends on answer order.
        records.sort_by(|a, b| match (a, b) {
            (
                Record::Mx {
                    preference: pa,
                    exchange: ea,
                },
                Record::Mx {
                    preference: pb,
                    exchange: eb,
                },
            ) => (pa, ea).cmp(&(pb, eb)),
            _ => std::cmp::Ordering::Equal,
        });
    }
    Ok(records)
}

/// One answer record as the server crate sees it, if it is of the asked kind.
fn convert(data: &RData, kind: RecordKind) -> Option<Record> {
    Some(match (kind, data) {
        (RecordKind::Mx, RData::MX(mx)) => Record::Mx {
            preference: mx.preference,
            exchange: name_to_string(&mx.exchange),
        },
        (RecordKind::A, RData::A(a)) => Record::A(a.0),
        (RecordKind::Aaaa, RData::AAAA(a)) => Record::Aaaa(a.0),
        (RecordKind::Txt, RData::TXT(txt)) => Record::Txt(txt_to_string(txt)),
        (RecordKind::Ptr, RData::PTR(p)) => Record::Ptr(name_to_string(&p.0)),
        _ => return None,
    })
}
