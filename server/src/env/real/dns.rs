//! DNS for the real world: hickory-resolver, with answers and failures mapped onto the seam's
//! [`Record`] and [`DnsError`].
//!
//! The mapping is what mail routing needs (RFC 5321 §5): a name that does not exist is a
//! permanent failure, a name without records of the asked type is a fact to act on (fall back
//! from MX to the address), and *everything else* — timeouts, SERVFAIL, REFUSED, unreachable
//! servers — means "try again later". hickory 0.26 reports both NXDOMAIN and NODATA as
//! `NetError::Dns(DnsError::NoRecordsFound(NoRecords { response_code, .. }))`; the response
//! code tells them apart, and it can also be SERVFAIL there, which is temporary.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError, NoRecords};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;

use super::RealOptions;
use crate::env::{DnsError, Record, RecordKind};

/// A configured hickory resolver plus a note of where its configuration came from (for the
/// trace and `Debug`, so an operator can see which servers are being asked).
pub(super) struct Resolver {
    inner: TokioResolver,
    source: String,
}

impl Resolver {
    /// Explicit nameservers win; otherwise `/etc/resolv.conf`; if that cannot be read or names
    /// no server, a local resolver on loopback port 53 (what the C library assumes then).
    pub(super) fn new(opts: &RealOptions) -> io::Result<Resolver> {
        let (mut builder, source) = if !opts.nameservers.is_empty() {
            let servers = opts.nameservers.iter().copied().map(server).collect();
            let list: Vec<String> = opts.nameservers.iter().map(|a| a.to_string()).collect();
            (
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(servers),
                    TokioRuntimeProvider::default(),
                ),
                format!("nameservers {}", list.join(", ")),
            )
        } else {
            match TokioResolver::builder_tokio() {
                Ok(b) => (b, "system configuration (/etc/resolv.conf)".to_string()),
                Err(e) => {
                    let local = [
                        SocketAddr::from((Ipv4Addr::LOCALHOST, 53)),
                        SocketAddr::from((Ipv6Addr::LOCALHOST, 53)),
                    ];
                    (
                        TokioResolver::builder_with_config(
                            ResolverConfig::from_name_servers(local.map(server).to_vec()),
                            TokioRuntimeProvider::default(),
                        ),
                        format!("local resolver on 127.0.0.1:53 and [::1]:53 (system configuration unusable: {e})"),
                    )
                }
            }
        };
        let o = builder.options_mut();
        if let Some(t) = opts.dns_timeout {
            o.timeout = t;
        }
        if let Some(a) = opts.dns_attempts {
            o.attempts = a;
        }
        let inner = builder.build().map_err(io::Error::other)?;
        Ok(Resolver { inner, source })
    }

    pub(super) fn source(&self) -> &str {
        &self.source
    }

    /// One query. The name is made fully qualified first: a mail domain is never relative,
    /// and letting resolv.conf's `search` list apply could turn a missing domain into some
    /// local host's records.
    pub(super) async fn lookup(
        &self,
        name: &str,
        kind: RecordKind,
    ) -> Result<Vec<Record>, DnsError> {
        // A name that cannot be encoded (label over 63 octets, empty label...) cannot exist.
        let qname = query_name(name, kind).ok_or(DnsError::NxDomain)?;
        match self.inner.lookup(qname, record_type(kind)).await {
            Ok(lookup) => records(lookup.answers().iter().map(|r| &r.data), kind),
            Err(e) => Err(map_error(&e)),
        }
    }
}

/// A nameserver at `addr`: UDP, with TCP on the same port for truncated answers.
fn server(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

/// The fully qualified name to ask for. For PTR an IP address is accepted too and turned into
/// its `in-addr.arpa`/`ip6.arpa` name, so callers need not build reverse names themselves.
/// Relaxed parsing accepts the underscores of `_dmarc.` and `._domainkey.` names.
fn query_name(name: &str, kind: RecordKind) -> Option<Name> {
    let mut qname = match (kind, name.parse::<IpAddr>()) {
        (RecordKind::Ptr, Ok(ip)) => Name::from(ip),
        _ => Name::from_str_relaxed(name).ok()?,
    };
    qname.set_fqdn(true);
    Some(qname)
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

/// The answers of the asked type, in the seam's form. Other records (the CNAME chain that led
/// there) are dropped; if nothing is left the name has no such records (NODATA).
///
/// MX records are sorted by preference, stably: equal preferences keep the server's order,
/// which is the load-spreading RFC 5321 §5.1 asks for. Other types keep the server's order.
fn records<'a>(
    answers: impl Iterator<Item = &'a RData>,
    kind: RecordKind,
) -> Result<Vec<Record>, DnsError> {
    let mut out: Vec<Record> = answers
        .filter_map(|data| match (kind, data) {
            (RecordKind::Mx, RData::MX(mx)) => Some(Record::Mx {
                preference: mx.preference,
                exchange: name_string(&mx.exchange),
            }),
            (RecordKind::A, RData::A(a)) => Some(Record::A(a.0)),
            (RecordKind::Aaaa, RData::AAAA(a)) => Some(Record::Aaaa(a.0)),
            // A TXT record's character-strings are one value split for the wire (SPF, DKIM).
            (RecordKind::Txt, RData::TXT(txt)) => Some(Record::Txt(txt.to_string())),
            (RecordKind::Ptr, RData::PTR(ptr)) => Some(Record::Ptr(name_string(&ptr.0))),
            _ => None,
        })
        .collect();
    if out.is_empty() {
        return Err(DnsError::NoRecords);
    }
    if kind == RecordKind::Mx {
        out.sort_by_key(|r| match r {
            Record::Mx { preference, .. } => *preference,
            _ => u16::MAX,
        });
    }
    Ok(out)
}

/// A domain name as the seam spells it: ASCII (IDNs as `xn--`), lower-case, no trailing dot.
/// The root — the null MX of RFC 7505, `MX 0 .` — becomes the empty string.
fn name_string(name: &Name) -> String {
    let mut s = name.to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s.make_ascii_lowercase();
    s
}

/// hickory's error to the seam's. Only an authoritative-looking "no such name" is permanent.
fn map_error(e: &NetError) -> DnsError {
    match e {
        NetError::Dns(HickoryDnsError::NoRecordsFound(NoRecords { response_code, .. })) => {
            match *response_code {
                ResponseCode::NXDomain => DnsError::NxDomain,
                ResponseCode::NoError => DnsError::NoRecords,
                code => DnsError::Temporary(format!("{code}")),
            }
        }
        NetError::Dns(HickoryDnsError::ResponseCode(ResponseCode::NXDomain)) => DnsError::NxDomain,
        other => DnsError::Temporary(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use hickory_resolver::proto::op::{Message, OpCode};
    use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
    use hickory_resolver::proto::rr::Record as HickoryRecord;
    use tokio::net::UdpSocket;

    use super::*;

    fn opts(server: SocketAddr) -> RealOptions {
        RealOptions {
            nameservers: vec![server],
            dns_timeout: Some(Duration::from_millis(300)),
            dns_attempts: Some(0),
            ..RealOptions::default()
        }
    }

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn rr(name: &str, data: RData) -> HickoryRecord {
        HickoryRecord::from_rdata(n(name), 300, data)
    }

    /// The zone the loopback responder serves. Names in answers are deliberately mixed-case and
    /// MX records out of order, to check the normalisation.
    fn answer(query: &Message) -> Message {
        let mut m = Message::response(query.metadata.id, OpCode::Query);
        m.metadata.recursion_desired = query.metadata.recursion_desired;
        m.metadata.recursion_available = true;
        m.metadata.authoritative = true;
        let Some(q) = query.queries.first().cloned() else {
            m.metadata.response_code = ResponseCode::FormErr;
            return m;
        };
        let qname = q.name.to_ascii().to_ascii_lowercase();
        let owner = q.name.to_ascii();
        m.add_query(q.clone());
        let soa = rr(
            "test.",
            RData::SOA(SOA::new(
                n("ns.test."),
                n("hostmaster.test."),
                1,
                3600,
                600,
                86400,
                60,
            )),
        );
        match (qname.as_str(), q.query_type) {
            ("mx.test.", RecordType::MX) => {
                m.add_answer(rr(&owner, RData::MX(MX::new(20, n("MX2.Example.TEST.")))));
                m.add_answer(rr(&owner, RData::MX(MX::new(10, n("mx1.example.test.")))));
                m.add_answer(rr(&owner, RData::MX(MX::new(20, n("mx3.example.test.")))));
            }
            ("null.test.", RecordType::MX) => {
                m.add_answer(rr(&owner, RData::MX(MX::new(0, Name::root()))));
            }
            ("alias.test.", RecordType::MX) => {
                m.add_answer(rr(&owner, RData::CNAME(CNAME(n("mx.test.")))));
                m.add_answer(rr(
                    "mx.test.",
                    RData::MX(MX::new(5, n("mx1.example.test."))),
                ));
            }
            ("a.test.", RecordType::A) => {
                m.add_answer(rr(&owner, RData::A(A::new(192, 0, 2, 1))));
                m.add_answer(rr(&owner, RData::A(A::new(192, 0, 2, 2))));
            }
            ("a.test.", RecordType::AAAA) => {
                m.add_answer(rr(
                    &owner,
                    RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                ));
            }
            ("_dmarc.txt.test.", RecordType::TXT) => {
                let txt = TXT::new(vec!["v=DMARC1; ".into(), "p=reject".into()]);
                m.add_answer(rr(&owner, RData::TXT(txt)));
            }
            ("1.2.0.192.in-addr.arpa.", RecordType::PTR) => {
                m.add_answer(rr(&owner, RData::PTR(PTR(n("Host.Example.TEST.")))));
            }
            ("fail.test.", _) => m.metadata.response_code = ResponseCode::ServFail,
            ("refused.test.", _) => m.metadata.response_code = ResponseCode::Refused,
            // The name exists (it has other types) but not this one: NODATA.
            ("mx.test." | "a.test.", _) => {
                m.add_authority(soa);
            }
            _ => {
                m.metadata.response_code = ResponseCode::NXDomain;
                m.add_authority(soa);
            }
        }
        m
    }

    /// A tiny authoritative server on a loopback UDP port, answering from [`answer`].
    async fn responder() -> SocketAddr {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        drop(tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((len, peer)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let bytes = answer(&query).to_vec().unwrap();
                let _ = sock.send_to(&bytes, peer).await;
            }
        }));
        addr
    }

    #[tokio::test]
    async fn answers_are_mapped_from_a_real_server() {
        let server = responder().await;
        let r = Resolver::new(&opts(server)).unwrap();
        assert!(r.source().contains(&server.to_string()), "{}", r.source());

        let mx = |p: u16, e: &str| Record::Mx {
            preference: p,
            exchange: e.to_string(),
        };
        assert_eq!(
            r.lookup("mx.test", RecordKind::Mx).await,
            Ok(vec![
                mx(10, "mx1.example.test"),
                mx(20, "mx2.example.test"),
                mx(20, "mx3.example.test"),
            ])
        );
        // Trailing dot and case in the query make no difference.
        assert_eq!(r.lookup("MX.Test.", RecordKind::Mx).await.unwrap().len(), 3);
        // Null MX (RFC 7505): the root exchange is the empty name.
        assert_eq!(
            r.lookup("null.test", RecordKind::Mx).await,
            Ok(vec![mx(0, "")])
        );
        // The CNAME on the way is dropped.
        assert_eq!(
            r.lookup("alias.test", RecordKind::Mx).await,
            Ok(vec![mx(5, "mx1.example.test")])
        );
        assert_eq!(
            r.lookup("a.test", RecordKind::A).await,
            Ok(vec![
                Record::A(Ipv4Addr::new(192, 0, 2, 1)),
                Record::A(Ipv4Addr::new(192, 0, 2, 2)),
            ])
        );
        assert_eq!(
            r.lookup("a.test", RecordKind::Aaaa).await,
            Ok(vec![Record::Aaaa("2001:db8::1".parse().unwrap())])
        );
        assert_eq!(
            r.lookup("_dmarc.txt.test", RecordKind::Txt).await,
            Ok(vec![Record::Txt("v=DMARC1; p=reject".into())])
        );
        let ptr = Ok(vec![Record::Ptr("host.example.test".into())]);
        assert_eq!(
            r.lookup("1.2.0.192.in-addr.arpa", RecordKind::Ptr).await,
            ptr
        );
        assert_eq!(r.lookup("192.0.2.1", RecordKind::Ptr).await, ptr);

        assert_eq!(
            r.lookup("nx.test", RecordKind::Mx).await,
            Err(DnsError::NxDomain)
        );
        assert_eq!(
            r.lookup("mx.test", RecordKind::A).await,
            Err(DnsError::NoRecords)
        );
        assert_eq!(
            r.lookup("a.test", RecordKind::Mx).await,
            Err(DnsError::NoRecords)
        );
        assert!(matches!(
            r.lookup("fail.test", RecordKind::Mx).await,
            Err(DnsError::Temporary(_))
        ));
        assert!(matches!(
            r.lookup("refused.test", RecordKind::Mx).await,
            Err(DnsError::Temporary(_))
        ));
        // A name that cannot exist on the wire.
        let long = format!("{}.test", "x".repeat(64));
        assert_eq!(
            r.lookup(&long, RecordKind::Mx).await,
            Err(DnsError::NxDomain)
        );
    }

    #[tokio::test]
    async fn unreachable_nameserver_is_temporary_and_quick() {
        // Bind a loopback UDP port, then close it: nothing listens there any more.
        let closed = {
            let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            s.local_addr().unwrap()
        };
        let r = Resolver::new(&opts(closed)).unwrap();
        let start = Instant::now();
        let got = r.lookup("example.test", RecordKind::Mx).await;
        assert!(matches!(got, Err(DnsError::Temporary(_))), "{got:?}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn error_mapping() {
        let q = hickory_resolver::proto::op::Query::query(n("x.test."), RecordType::MX);
        let no = |code| {
            NetError::from(HickoryDnsError::NoRecordsFound(NoRecords::new(
                q.clone(),
                code,
            )))
        };
        assert_eq!(map_error(&no(ResponseCode::NXDomain)), DnsError::NxDomain);
        assert_eq!(map_error(&no(ResponseCode::NoError)), DnsError::NoRecords);
        assert!(matches!(
            map_error(&no(ResponseCode::ServFail)),
            DnsError::Temporary(_)
        ));
        assert!(matches!(
            map_error(&NetError::Timeout),
            DnsError::Temporary(_)
        ));
        assert!(matches!(
            map_error(&NetError::NoConnections),
            DnsError::Temporary(_)
        ));
        let io = NetError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(matches!(map_error(&io), DnsError::Temporary(_)));
    }
}
