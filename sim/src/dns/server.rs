//! The world's one DNS server: hickory-server's `Catalog` behind a turmoil UDP socket.
//!
//! hickory does the DNS semantics (authoritative answers, NXDOMAIN vs NODATA, CNAME chasing
//! inside a zone); this module adds what a whole simulated Internet needs on top:
//!
//! - **Every name has an answer.** The `Catalog` REFUSES names under no zone, but in the sim
//!   this server is the whole DNS, so an empty root zone is added (unless the scenario
//!   defines `.`): a name under no zone is NXDOMAIN.
//! - **CNAMEs are followed across zones** (hickory stops at its zone's edge), up to
//!   [`MAX_CHASE`] hops, the final name's RCODE winning (RFC 6604).
//! - **Faults**: [`DnsFault`]s turn answers into SERVFAIL, NXDOMAIN or silence for a while.
//! - **The trace**: every question and every answer is one line (source `dns`).
//!
//! Requests are handled one at a time, in arrival order, with no timer or randomness of our
//! own, so the same world gives the same trace.

use std::error::Error;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponse, ZoneHandler, ZoneType};
use turmoil::net::UdpSocket;

use super::zone::{DnsFault, FaultKind, Zone, Zones};
use super::{name_for_trace, txt_to_string};
use crate::clock::SimClock;
use crate::trace::Trace;

/// The DNS port the server listens on.
pub const DNS_PORT: u16 = 53;

/// Most cross-zone CNAME hops the server follows for one question (hickory separately
/// bounds chains inside one zone at 8). Loops end earlier: a name is never chased twice.
pub const MAX_CHASE: usize = 8;

/// Serves the world's DNS on `0.0.0.0:53` (simulated UDP) of the current turmoil host,
/// forever.
///
/// Returns only on a setup error (an invalid fault, zone data hickory refuses, the port
/// taken) or if the socket itself fails; a bad packet never stops it. `host` names the DNS
/// host in the trace.
pub async fn serve(
    zones: Zones,
    faults: Vec<DnsFault>,
    clock: SimClock,
    trace: Trace,
    host: String,
) -> Result<(), Box<dyn Error>> {
    serve_changing(vec![(0.0, zones)], faults, clock, trace, host).await
}

/// [`serve`] with zone data that changes over time (`[[dns.change]]`): `epochs` are
/// (from simulated second, zones), in time order; a question is answered from the last epoch
/// that has begun.
pub async fn serve_changing(
    epochs: Vec<(f64, Zones)>,
    faults: Vec<DnsFault>,
    clock: SimClock,
    trace: Trace,
    host: String,
) -> Result<(), Box<dyn Error>> {
    for fault in &faults {
        fault.check()?;
    }
    DNS_CLOCK.with(|c| *c.borrow_mut() = Some(clock.clone()));
    let mut catalogs = Vec::with_capacity(epochs.len());
    for (from, zones) in &epochs {
        catalogs.push((*from, build_catalog(zones)?));
    }
    let server = DnsServer {
        catalogs,
        faults,
        clock,
        trace,
        host,
    };
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, DNS_PORT)).await?;
    // The sim has no MTU, so no truncation: one buffer fits any datagram.
    let mut buf = vec![0u8; u16::MAX as usize];
    loop {
        let (len, src) = socket.recv_from(&mut buf).await?;
        if let Some(reply) = server.handle(&buf[..len], src).await {
            if let Err(e) = socket.send_to(&reply, src).await {
                server.record(format_args!("send to {src} failed: {e}"));
            }
        }
    }
}

/// Loads the zones into a `Catalog`, adding the empty root zone that makes every name under
/// no zone NXDOMAIN.
fn build_catalog(zones: &Zones) -> Result<Catalog, String> {
    let mut catalog = Catalog::new();
    for zone in &zones.zones {
        catalog.upsert(zone.origin.clone().into(), vec![zone_handler(zone)?]);
    }
    if !zones.zones.iter().any(|z| z.origin.is_root()) {
        let root = Zone {
            origin: Name::root(),
            records: Vec::new(),
        };
        catalog.upsert(Name::root().into(), vec![zone_handler(&root)?]);
    }
    Ok(catalog)
}

fn zone_handler(zone: &Zone) -> Result<Arc<dyn ZoneHandler>, String> {
    let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
        zone.origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    for record in std::iter::once(zone.soa()).chain(zone.records.iter().cloned()) {
        let described = format!("{} {}", name_for_trace(&record.name), record.record_type());
        if !handler.upsert_mut(record, 1) {
            return Err(format!(
                "zone {:?}: hickory refused record {described}",
                name_for_trace(&zone.origin)
            ));
        }
    }
    Ok(Arc::new(handler))
}

struct DnsServer {
    /// (from simulated second, catalog), in time order; the first from 0.
    catalogs: Vec<(f64, Catalog)>,
    faults: Vec<DnsFault>,
    clock: SimClock,
    trace: Trace,
    host: String,
}

impl DnsServer {
    fn record(&self, event: impl std::fmt::Display) {
        self.trace.record(&self.host, "dns", event);
    }

    /// One datagram in, at most one datagram out. Never panics on any input.
    async fn handle(&self, bytes: &[u8], src: SocketAddr) -> Option<Vec<u8>> {
        let request = match Message::from_vec(bytes) {
            Ok(m) => m,
            Err(e) => {
                self.record(format_args!(
                    "malformed query from {} ({} bytes): {e}",
                    src.ip(),
                    bytes.len()
                ));
                return None;
            }
        };
        let id = request.metadata.id;
        if request.metadata.message_type != MessageType::Query {
            self.record(format_args!("ignored response {id} from {}", src.ip()));
            return None;
        }

        let question = match request.queries.as_slice() {
            [q] => q.clone(),
            qs => {
                self.record(format_args!(
                    "Q {id} ({} questions) from {}",
                    qs.len(),
                    src.ip()
                ));
                return self.reply_error(&request, ResponseCode::FormErr, "");
            }
        };
        let qname = name_for_trace(question.name());
        let qtype = question.query_type();
        self.record(format_args!("Q {id} {qname} {qtype} from {}", src.ip()));

        if request.metadata.op_code != OpCode::Query {
            // The world's DNS is static: no UPDATE, NOTIFY...
            return self.reply_error(&request, ResponseCode::NotImp, "");
        }

        let elapsed = self.clock.elapsed().as_secs_f64();
        let lookup_name = super::name_to_string(question.name());
        if let Some(fault) = self
            .faults
            .iter()
            .find(|f| f.applies(&lookup_name, qtype, elapsed))
        {
            if let (FaultKind::Slow, Some(ms)) = (fault.kind, fault.delay_ms) {
                self.record(format_args!("Q {id} held back {ms} ms (slow fault)"));
                let until = self
                    .clock
                    .now()
                    .plus(std::time::Duration::from_secs_f64(ms / 1000.0));
                self.clock.sleep_until(until).await;
            }
            return match fault.kind {
                FaultKind::Slow => self.answer(bytes, &request, &question, src).await,
                FaultKind::Timeout => {
                    self.record(format_args!("A {id} DROPPED (timeout fault)"));
                    None
                }
                FaultKind::Servfail => {
                    self.reply_error(&request, ResponseCode::ServFail, " (fault)")
                }
                FaultKind::Nxdomain => {
                    self.reply_error(&request, ResponseCode::NXDomain, " (fault)")
                }
            };
        }

        self.answer(bytes, &request, &question, src).await
    }

    /// The zone data's answer to `question`, encoded.
    async fn answer(
        &self,
        bytes: &[u8],
        request: &Message,
        question: &Query,
        src: SocketAddr,
    ) -> Option<Vec<u8>> {
        let id = request.metadata.id;
        let response = match self.resolve(bytes, question, src).await {
            Ok(r) => r,
            Err(why) => {
                return self.reply_error(request, ResponseCode::ServFail, &format!(" ({why})"))
            }
        };
        match response.to_vec() {
            Ok(out) => {
                self.record(format_args!("A {id} {}", describe_answer(&response)));
                Some(out)
            }
            Err(e) => self.reply_error(
                request,
                ResponseCode::ServFail,
                &format!(" (encoding the answer failed: {e})"),
            ),
        }
    }

    /// An answer with no records: the question echoed, `rcode`, traced with `note`.
    fn reply_error(&self, request: &Message, rcode: ResponseCode, note: &str) -> Option<Vec<u8>> {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = rcode;
        metadata.authoritative = rcode == ResponseCode::NXDomain;
        let mut response = Message::new(metadata.id, MessageType::Response, metadata.op_code);
        response.metadata = metadata;
        response.add_queries(request.queries.iter().cloned());
        self.record(format_args!(
            "A {} {}{note}",
            metadata.id,
            rcode_name(rcode)
        ));
        match response.to_vec() {
            Ok(out) => Some(out),
            Err(e) => {
                // Only an unencodable echoed question can get here; drop it like a real
                // server would drop garbage.
                self.record(format_args!("A {} DROPPED (unencodable: {e})", metadata.id));
                None
            }
        }
    }

    /// The Catalog's answer to the original datagram, with CNAMEs chased across zones.
    async fn resolve(
        &self,
        bytes: &[u8],
        question: &Query,
        src: SocketAddr,
    ) -> Result<Message, String> {
        let mut response = self.ask_catalog(bytes.to_vec(), src).await?;
        let qtype = question.query_type();
        if matches!(qtype, RecordType::CNAME | RecordType::ANY) {
            return Ok(response);
        }
        let mut chased: Vec<Name> = vec![question.name().clone()];
        for _ in 0..MAX_CHASE {
            if response.metadata.response_code != ResponseCode::NoError {
                break;
            }
            let end = chain_end(&response.answers, question.name());
            let answered = response
                .answers
                .iter()
                .any(|r| r.name == end && r.record_type() == qtype);
            if answered || chased.contains(&end) {
                break;
            }
            // The chain leaves the zone that answered: ask again for its end.
            let mut sub = Message::new(response.metadata.id, MessageType::Query, OpCode::Query);
            sub.add_query(Query::query(end.clone(), qtype));
            chased.push(end);
            let sub_bytes = sub
                .to_vec()
                .map_err(|e| format!("encoding a sub-query: {e}"))?;
            let sub_response = self.ask_catalog(sub_bytes, src).await?;
            for record in sub_response.answers {
                if !response.answers.contains(&record) {
                    response.answers.push(record);
                }
            }
            response.metadata.response_code = sub_response.metadata.response_code;
            response.authorities = sub_response.authorities;
        }
        Ok(response)
    }

    /// Runs one request through the Catalog and decodes what it would have sent.
    async fn ask_catalog(&self, bytes: Vec<u8>, src: SocketAddr) -> Result<Message, String> {
        let request = Request::from_bytes(bytes, src, Protocol::Udp)
            .map_err(|e| format!("undecodable request: {e}"))?;
        let capture = Capture::default();
        let now = self.clock.elapsed().as_secs_f64();
        let catalog = self
            .catalogs
            .iter()
            .rev()
            .find(|(from, _)| *from <= now)
            .or(self.catalogs.first())
            .map(|(_, c)| c)
            .ok_or_else(|| "no zone data".to_string())?;
        catalog
            .handle_request::<_, SimTime>(&request, capture.clone())
            .await;
        let bytes = capture
            .take()
            .ok_or_else(|| "the catalog gave no answer".to_string())?;
        Message::from_vec(&bytes).map_err(|e| format!("undecodable catalog answer: {e}"))
    }
}

/// Follows the CNAMEs in `answers` from `start`; the name whose records answer the question.
pub(crate) fn chain_end(answers: &[Record], start: &Name) -> Name {
    let mut current = start.clone();
    // Each hop needs a distinct CNAME record, so more hops than records means a loop.
    for _ in 0..=answers.len() {
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(target) if r.name == current => Some(target.0.clone()),
            _ => None,
        });
        match next {
            Some(n) => current = n,
            None => break,
        }
    }
    current
}

/// The answer part of an `A` trace line: RCODE, then the answer records (owner shown only
/// when it is not the question's name), or `NODATA` for an empty NOERROR.
fn describe_answer(response: &Message) -> String {
    let rcode = rcode_name(response.metadata.response_code);
    let qname = response.queries.first().map(|q| q.name().clone());
    if response.answers.is_empty() {
        return if response.metadata.response_code == ResponseCode::NoError {
            format!("{rcode} NODATA")
        } else {
            rcode
        };
    }
    let records: Vec<String> = response
        .answers
        .iter()
        .map(|r| {
            let data = rdata_text(&r.data);
            if Some(&r.name) == qname.as_ref() {
                data
            } else {
                format!("{} {data}", name_for_trace(&r.name))
            }
        })
        .collect();
    format!("{rcode} {}", records.join("; "))
}

/// One record's type and data, as the trace shows it (TXT strings concatenated and quoted).
fn rdata_text(data: &RData) -> String {
    match data {
        RData::A(a) => format!("A {}", a.0),
        RData::AAAA(a) => format!("AAAA {}", a.0),
        RData::MX(mx) => format!("MX {} {}", mx.preference, name_for_trace(&mx.exchange)),
        RData::TXT(txt) => format!("TXT {:?}", txt_to_string(txt)),
        RData::PTR(p) => format!("PTR {}", name_for_trace(&p.0)),
        RData::CNAME(c) => format!("CNAME {}", name_for_trace(&c.0)),
        other => format!("{} {other}", other.record_type()),
    }
}

/// The RFC mnemonic of an RCODE (hickory's `Display` is prose).
pub(crate) fn rcode_name(rcode: ResponseCode) -> String {
    match u16::from(rcode) {
        0 => "NOERROR".to_string(),
        1 => "FORMERR".to_string(),
        2 => "SERVFAIL".to_string(),
        3 => "NXDOMAIN".to_string(),
        4 => "NOTIMP".to_string(),
        5 => "REFUSED".to_string(),
        n => format!("RCODE{n}"),
    }
}

/// A `ResponseHandler` that keeps the encoded response instead of sending it, so the server
/// can post-process it and send it over turmoil UDP itself.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

impl Capture {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        let info = response.destructive_emit(&mut encoder)?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
        Ok(info)
    }
}

/// hickory's clock, made deterministic: the Catalog reads `current_time` on every request
/// (it only matters for UPDATE and zone transfers, which the world never does), and the
/// real-clock default would be the one wall-clock read in the sim. Its timers — unused by the
/// Catalog today — run on the world's [`SimClock`], so a warp fires them on simulated time
/// instead of skipping them as a tokio timer would.
struct SimTime;

thread_local! {
    /// The clock of the world whose DNS host runs on this thread (turmoil polls every host of
    /// a world on the thread that steps it). `Time`'s functions take no `self`, so this is
    /// how they find it; [`serve`] sets it each time the host (re)boots.
    static DNS_CLOCK: std::cell::RefCell<Option<SimClock>> = const { std::cell::RefCell::new(None) };
}

fn dns_clock() -> Option<SimClock> {
    DNS_CLOCK.with(|c| c.borrow().clone())
}

#[async_trait::async_trait]
impl Time for SimTime {
    async fn delay_for(duration: Duration) {
        match dns_clock() {
            Some(clock) => clock.sleep_until(clock.now().plus(duration)).await,
            // No world on this thread: no simulated time will pass.
            None => std::future::pending().await,
        }
    }

    async fn timeout<F: 'static + Future + Send>(
        duration: Duration,
        future: F,
    ) -> Result<F::Output, io::Error> {
        let Some(clock) = dns_clock() else {
            return Ok(future.await);
        };
        let deadline = clock.now().plus(duration);
        tokio::select! {
            biased;
            out = future => Ok(out),
            _ = clock.sleep_until(deadline) => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "future timed out"))
            }
        }
    }

    fn current_time() -> u64 {
        0
    }
}
