//! Tests of the world's DNS: each builds a small turmoil world with the DNS host and one
//! client host that runs a script of queries, then checks the results and the trace.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record as HRecord};
use mailsim_server::env::{DnsError, Record, RecordKind, Timestamp};
use serde::Deserialize;
use turmoil::net::UdpSocket;

use super::{build_zones, query, serve, DnsFault, FaultKind, ZoneError, ZoneSpec, Zones};
use crate::clock::SimClock;
use crate::trace::Trace;

const DNS_IP: &str = "10.0.0.53";
const CLIENT_IP: &str = "10.0.0.1";

fn dns_addr() -> SocketAddr {
    SocketAddr::new(DNS_IP.parse().unwrap(), 53)
}

/// The zones most tests use, written as a scenario file would.
const SCENARIO: &str = r#"
[dns.zones."example.org"]
records = [
  "@ MX 20 mx2",
  "@ MX 10 mx.example.org.",
  "mx A 192.0.2.1",
  "mx 300 IN A 192.0.2.11",
  "mx2 AAAA 2001:db8::2",
  "@ TXT \"v=spf1 ip4:192.0.2.0/24 -all\"",
  "www CNAME example.org.",
  "alias cname www",
  "ext CNAME mail.example.com.",
  "dangling CNAME nowhere",
  "_dmarc TXT \"v=DMARC1; p=none\"",
  "multi TXT \"part one, \" \"part \\\"two\\\"\"",
  "bare txt hello",
  "deep.sub A 192.0.2.9",
]

[dns.zones."Example.COM."]
records = ["mail A 198.51.100.7", "nomail MX 0 ."]

[dns.zones."nomail.example"]
records = ["@ MX 0 ."]

[dns.zones."2.0.192.in-addr.arpa"]
records = ["1 PTR mx.example.org."]
"#;

#[derive(Deserialize)]
struct Doc {
    dns: DnsDoc,
}

#[derive(Deserialize)]
struct DnsDoc {
    zones: BTreeMap<String, ZoneSpec>,
    #[serde(default)]
    fault: Vec<DnsFault>,
}

fn parse_doc(toml_text: &str) -> DnsDoc {
    toml::from_str::<Doc>(toml_text)
        .expect("test scenario parses")
        .dns
}

fn zones() -> Zones {
    build_zones(&parse_doc(SCENARIO).zones).expect("test zones are valid")
}

/// One thing the client does.
#[derive(Clone)]
enum Step {
    Query(&'static str, RecordKind),
    Sleep(u64),
    /// Sends raw bytes to the DNS server (not expecting an answer).
    Raw(Vec<u8>),
}

use Step::{Query as Q, Sleep};

type Outcome = Result<Vec<Record>, DnsError>;

/// Runs the client script against the DNS server; returns each query's outcome and the trace.
fn run_world(
    zones: Zones,
    faults: Vec<DnsFault>,
    script: Vec<Step>,
) -> (Vec<Outcome>, Vec<String>) {
    let mut sim = turmoil::Builder::new()
        .rng_seed(0x5eed)
        .simulation_duration(Duration::from_secs(600))
        .build();
    let clock = SimClock::new(Timestamp::from_secs(1_767_225_600));
    let trace = Trace::new(clock.clone());

    let (c, t) = (clock.clone(), trace.clone());
    sim.host(DNS_IP, move || {
        serve(
            zones.clone(),
            faults.clone(),
            c.clone(),
            t.clone(),
            "dns".to_string(),
        )
    });

    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let out = outcomes.clone();
    sim.client(CLIENT_IP, async move {
        let mut id = 0u16;
        for step in script {
            match step {
                Step::Query(name, kind) => {
                    id += 1;
                    // These worlds never warp: turmoil's own clock is the simulated clock.
                    #[allow(clippy::disallowed_methods)]
                    let timeout = tokio::time::sleep(Duration::from_secs(2));
                    let r = query(dns_addr(), name, kind, id, timeout).await;
                    out.lock().unwrap().push(r);
                }
                // As above: no warps in these worlds.
                #[allow(clippy::disallowed_methods)]
                Step::Sleep(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
                Step::Raw(bytes) => {
                    let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
                    s.send_to(&bytes, dns_addr()).await?;
                }
            }
        }
        Ok(())
    });
    sim.run().expect("simulation succeeds");
    let outcomes = outcomes.lock().unwrap().clone();
    (outcomes, trace.lines())
}

/// Runs one query each and returns the outcomes.
fn ask(queries: &[(&'static str, RecordKind)]) -> Vec<Outcome> {
    let script = queries.iter().map(|(n, k)| Q(n, *k)).collect();
    run_world(zones(), Vec::new(), script).0
}

fn mx(preference: u16, exchange: &str) -> Record {
    Record::Mx {
        preference,
        exchange: exchange.to_string(),
    }
}

fn fault(kind: FaultKind, record: Option<&str>, from: f64, until: Option<f64>) -> DnsFault {
    DnsFault {
        name: "example.org".to_string(),
        kind,
        record: record.map(str::to_string),
        from_secs: from,
        until_secs: until,
        delay_ms: None,
    }
}

/// The events of the trace (the part after the timestamp, host and source columns).
fn events(trace: &[String]) -> Vec<String> {
    trace
        .iter()
        .map(|l| {
            let mut parts = l.split_whitespace();
            let (_time, host, source) = (parts.next(), parts.next(), parts.next());
            assert_eq!((host, source), (Some("dns"), Some("dns")), "line {l:?}");
            parts.collect::<Vec<_>>().join(" ")
        })
        .collect()
}

#[test]
fn mx_sorted_by_preference() {
    let r = ask(&[("example.org", RecordKind::Mx)]);
    assert_eq!(
        r,
        vec![Ok(vec![
            mx(10, "mx.example.org"),
            mx(20, "mx2.example.org")
        ])]
    );
}

#[test]
fn a_and_aaaa() {
    let r = ask(&[
        ("mx.example.org", RecordKind::A),
        ("MX.Example.ORG.", RecordKind::A),
        ("mx2.example.org", RecordKind::Aaaa),
        ("mail.example.com", RecordKind::A),
    ]);
    let both = vec![
        Record::A(Ipv4Addr::new(192, 0, 2, 1)),
        Record::A(Ipv4Addr::new(192, 0, 2, 11)),
    ];
    assert_eq!(r[0], Ok(both.clone()));
    assert_eq!(r[1], Ok(both), "names are case-insensitive");
    assert_eq!(r[2], Ok(vec![Record::Aaaa("2001:db8::2".parse().unwrap())]));
    assert_eq!(r[3], Ok(vec![Record::A(Ipv4Addr::new(198, 51, 100, 7))]));
}

#[test]
fn txt_strings_are_concatenated() {
    let r = ask(&[
        ("example.org", RecordKind::Txt),
        ("_dmarc.example.org", RecordKind::Txt),
        ("multi.example.org", RecordKind::Txt),
        ("bare.example.org", RecordKind::Txt),
    ]);
    let txt = |s: &str| Ok(vec![Record::Txt(s.to_string())]);
    assert_eq!(r[0], txt("v=spf1 ip4:192.0.2.0/24 -all"));
    assert_eq!(r[1], txt("v=DMARC1; p=none"));
    assert_eq!(r[2], txt("part one, part \"two\""));
    assert_eq!(r[3], txt("hello"));
}

#[test]
fn long_txt_is_split_on_the_wire_and_joined_back() {
    let key = "k".repeat(600);
    let mut specs = BTreeMap::new();
    specs.insert(
        "example.net".to_string(),
        ZoneSpec {
            records: vec![format!("dkim._domainkey TXT \"v=DKIM1; p={key}\"")],
        },
    );
    let zones = build_zones(&specs).unwrap();
    let txt = &zones.zones[0].records[0];
    match &txt.data {
        RData::TXT(t) => assert_eq!(t.txt_data.len(), 3, "608 octets → 255 + 255 + 98"),
        other => panic!("not TXT: {other:?}"),
    }
    let (r, _) = run_world(
        zones,
        Vec::new(),
        vec![Q("dkim._domainkey.example.net", RecordKind::Txt)],
    );
    assert_eq!(r, vec![Ok(vec![Record::Txt(format!("v=DKIM1; p={key}"))])]);
}

#[test]
fn ptr() {
    let r = ask(&[("1.2.0.192.in-addr.arpa", RecordKind::Ptr)]);
    assert_eq!(r, vec![Ok(vec![Record::Ptr("mx.example.org".to_string())])]);
}

#[test]
fn cname_chase() {
    let r = ask(&[
        ("www.example.org", RecordKind::Mx),
        ("alias.example.org", RecordKind::Mx),
        ("alias.example.org", RecordKind::Txt),
        ("alias.example.org", RecordKind::A),
        ("ext.example.org", RecordKind::A),
        ("dangling.example.org", RecordKind::A),
    ]);
    let mxs = Ok(vec![mx(10, "mx.example.org"), mx(20, "mx2.example.org")]);
    assert_eq!(r[0], mxs, "one CNAME");
    assert_eq!(r[1], mxs, "two CNAMEs");
    assert_eq!(
        r[2],
        Ok(vec![Record::Txt(
            "v=spf1 ip4:192.0.2.0/24 -all".to_string()
        )])
    );
    assert_eq!(r[3], Err(DnsError::NoRecords), "the target has no A");
    assert_eq!(
        r[4],
        Ok(vec![Record::A(Ipv4Addr::new(198, 51, 100, 7))]),
        "CNAME into another zone"
    );
    assert_eq!(r[5], Err(DnsError::NxDomain), "CNAME to nowhere");
}

#[test]
fn nxdomain_for_unknown_names() {
    let r = ask(&[
        ("nosuch.example.org", RecordKind::A),
        ("example.invalid", RecordKind::Mx),
        ("org", RecordKind::Mx),
        ("a..b", RecordKind::A),
    ]);
    assert_eq!(r, vec![Err(DnsError::NxDomain); 4]);
}

#[test]
fn nodata_for_existing_names_without_the_type() {
    let r = ask(&[
        ("mx.example.org", RecordKind::Mx),
        ("example.org", RecordKind::A),
        ("sub.example.org", RecordKind::A), // an empty non-terminal exists
        ("2.0.192.in-addr.arpa", RecordKind::Ptr),
    ]);
    assert_eq!(r, vec![Err(DnsError::NoRecords); 4]);
}

#[test]
fn null_mx() {
    let r = ask(&[
        ("nomail.example", RecordKind::Mx),
        ("nomail.example.com", RecordKind::Mx),
    ]);
    assert_eq!(r, vec![Ok(vec![mx(0, "")]), Ok(vec![mx(0, "")])]);
}

#[test]
fn servfail_fault_window() {
    let faults = vec![fault(FaultKind::Servfail, Some("mx"), 0.0, Some(30.0))];
    let (r, trace) = run_world(
        zones(),
        faults,
        vec![
            Q("example.org", RecordKind::Mx),
            Q("example.org", RecordKind::Txt), // other types are not affected
            Sleep(31),
            Q("example.org", RecordKind::Mx),
        ],
    );
    assert_eq!(r[0], Err(DnsError::Temporary("SERVFAIL".to_string())));
    assert!(r[1].is_ok(), "{:?}", r[1]);
    assert_eq!(
        r[2],
        Ok(vec![mx(10, "mx.example.org"), mx(20, "mx2.example.org")])
    );
    assert!(events(&trace).contains(&"A 1 SERVFAIL (fault)".to_string()));
}

#[test]
fn fault_starting_later() {
    let faults = vec![fault(FaultKind::Nxdomain, None, 10.0, None)];
    let (r, _) = run_world(
        zones(),
        faults,
        vec![
            Q("example.org", RecordKind::Mx),
            Sleep(11),
            Q("example.org", RecordKind::Mx),
            Q("EXAMPLE.org.", RecordKind::Txt),
            Q("mx.example.org", RecordKind::A), // another name
        ],
    );
    assert!(r[0].is_ok());
    assert_eq!(r[1], Err(DnsError::NxDomain));
    assert_eq!(r[2], Err(DnsError::NxDomain));
    assert!(r[3].is_ok());
}

#[test]
fn timeout_fault() {
    let faults = vec![fault(FaultKind::Timeout, Some("all"), 0.0, None)];
    let (r, trace) = run_world(zones(), faults, vec![Q("example.org", RecordKind::Mx)]);
    match &r[0] {
        Err(DnsError::Temporary(why)) => assert!(why.starts_with("timeout"), "{why}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        events(&trace),
        vec![
            "Q 1 example.org MX from 10.0.0.1",
            "A 1 DROPPED (timeout fault)"
        ]
    );
}

#[test]
fn invalid_faults_are_refused() {
    let mut f = fault(FaultKind::Servfail, Some("SRV"), 0.0, None);
    assert!(f
        .check()
        .unwrap_err()
        .contains("unknown record type \"SRV\""));
    f.record = None;
    f.until_secs = Some(-1.0);
    assert!(f.check().unwrap_err().contains("until_secs"));
    let doc = parse_doc(
        r#"
        [dns.zones]
        [[dns.fault]]
        name = "example.org"
        kind = "servfail"
        record = "MX"
        until_secs = 30
        "#,
    );
    assert_eq!(
        doc.fault,
        vec![fault(FaultKind::Servfail, Some("MX"), 0.0, Some(30.0))]
    );
    assert!(toml::from_str::<Doc>(
        "[dns.zones]\n[[dns.fault]]\nname = \"x\"\nkind = \"explode\"\n"
    )
    .is_err());
}

#[test]
fn malformed_packets_are_ignored() {
    let (r, trace) = run_world(
        zones(),
        Vec::new(),
        vec![
            Step::Raw(vec![0xde, 0xad, 0xbe]),
            Step::Raw(Vec::new()),
            Sleep(1),
            Q("mx.example.org", RecordKind::A),
        ],
    );
    assert!(r[0].is_ok(), "the server survived: {:?}", r[0]);
    // The two datagrams may arrive in either order (latency is random, but seeded).
    let mut ev = events(&trace);
    ev[..2].sort();
    assert!(
        ev[0].starts_with("malformed query from 10.0.0.1 (0 bytes)"),
        "{ev:?}"
    );
    assert!(
        ev[1].starts_with("malformed query from 10.0.0.1 (3 bytes)"),
        "{ev:?}"
    );
    assert_eq!(ev.len(), 4, "no answer to garbage: {ev:?}");
}

#[test]
fn trace_lines() {
    let (_, trace) = run_world(
        zones(),
        Vec::new(),
        vec![
            Q("example.org", RecordKind::Mx),
            Q("www.example.org", RecordKind::Mx),
            Q("nosuch.example.org", RecordKind::A),
            Q("mx.example.org", RecordKind::Mx),
            Q("multi.example.org", RecordKind::Txt),
            Q("ext.example.org", RecordKind::A),
            Q("nomail.example", RecordKind::Mx),
        ],
    );
    assert_eq!(
        events(&trace),
        vec![
            "Q 1 example.org MX from 10.0.0.1",
            "A 1 NOERROR MX 20 mx2.example.org; MX 10 mx.example.org",
            "Q 2 www.example.org MX from 10.0.0.1",
            "A 2 NOERROR CNAME example.org; example.org MX 20 mx2.example.org; \
             example.org MX 10 mx.example.org",
            "Q 3 nosuch.example.org A from 10.0.0.1",
            "A 3 NXDOMAIN",
            "Q 4 mx.example.org MX from 10.0.0.1",
            "A 4 NOERROR NODATA",
            "Q 5 multi.example.org TXT from 10.0.0.1",
            r#"A 5 NOERROR TXT "part one, part \"two\"""#,
            "Q 6 ext.example.org A from 10.0.0.1",
            "A 6 NOERROR CNAME mail.example.com; mail.example.com A 198.51.100.7",
            "Q 7 nomail.example MX from 10.0.0.1",
            "A 7 NOERROR MX 0 .",
        ]
    );
}

#[test]
fn same_inputs_same_trace() {
    let script = || {
        vec![
            Q("example.org", RecordKind::Mx),
            Q("mx.example.org", RecordKind::A),
            Sleep(3),
            Q("alias.example.org", RecordKind::Mx),
            Q("nosuch.example.org", RecordKind::Txt),
            Q("example.org", RecordKind::Mx),
            Step::Raw(vec![1, 2, 3, 4, 5]),
            Q("1.2.0.192.in-addr.arpa", RecordKind::Ptr),
        ]
    };
    let faults = || vec![fault(FaultKind::Servfail, Some("MX"), 2.0, Some(10.0))];
    let (r1, t1) = run_world(zones(), faults(), script());
    let (r2, t2) = run_world(zones(), faults(), script());
    assert_eq!(r1, r2);
    assert_eq!(t1, t2);
    assert_eq!(t1.len(), 13, "{t1:#?}");
    assert_eq!(r1[4], Err(DnsError::Temporary("SERVFAIL".to_string())));
}

/// A fake DNS server for the client's defences: answers each query first with a reply that
/// has the wrong id, then with `reply(query)`.
fn run_fake_server(reply: fn(&Message) -> Vec<u8>, kind: RecordKind) -> Outcome {
    let mut sim = turmoil::Builder::new().rng_seed(1).build();
    sim.host(DNS_IP, move || async move {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 53)).await?;
        let mut buf = vec![0u8; 65535];
        loop {
            let (n, src) = socket.recv_from(&mut buf).await?;
            let q = Message::from_vec(&buf[..n])?;
            let mut spoof = answer_a(&q, Ipv4Addr::new(6, 6, 6, 6));
            spoof.metadata.id = q.metadata.id.wrapping_add(1);
            socket.send_to(&spoof.to_vec()?, src).await?;
            socket.send_to(&reply(&q), src).await?;
        }
    });
    let out = Arc::new(Mutex::new(None));
    let o = out.clone();
    sim.client(CLIENT_IP, async move {
        // This world never warps: turmoil's own clock is the simulated clock.
        #[allow(clippy::disallowed_methods)]
        let timeout = tokio::time::sleep(Duration::from_secs(2));
        *o.lock().unwrap() = Some(query(dns_addr(), "host.test", kind, 77, timeout).await);
        Ok(())
    });
    sim.run().unwrap();
    let r = out.lock().unwrap().take();
    r.expect("the client ran")
}

fn answer_a(q: &Message, ip: Ipv4Addr) -> Message {
    let mut m = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
    m.add_queries(q.queries.iter().cloned());
    m.add_answer(HRecord::from_rdata(
        q.queries[0].name().clone(),
        60,
        RData::A(A(ip)),
    ));
    m
}

#[test]
fn client_ignores_replies_with_another_id() {
    let r = run_fake_server(
        |q| answer_a(q, Ipv4Addr::new(192, 0, 2, 99)).to_vec().unwrap(),
        RecordKind::A,
    );
    assert_eq!(r, Ok(vec![Record::A(Ipv4Addr::new(192, 0, 2, 99))]));
}

#[test]
fn client_maps_bad_replies_to_temporary() {
    let garbage = run_fake_server(|_| vec![0xff; 7], RecordKind::A);
    assert!(
        matches!(&garbage, Err(DnsError::Temporary(w)) if w.starts_with("malformed reply")),
        "{garbage:?}"
    );
    let refused = run_fake_server(
        |q| {
            let mut m = answer_a(q, Ipv4Addr::LOCALHOST);
            m.answers.clear();
            m.metadata.response_code = ResponseCode::Refused;
            m.to_vec().unwrap()
        },
        RecordKind::A,
    );
    assert_eq!(refused, Err(DnsError::Temporary("REFUSED".to_string())));
    let truncated = run_fake_server(
        |q| {
            let mut m = answer_a(q, Ipv4Addr::LOCALHOST);
            m.metadata.truncation = true;
            m.to_vec().unwrap()
        },
        RecordKind::A,
    );
    assert_eq!(
        truncated,
        Err(DnsError::Temporary("truncated reply".to_string()))
    );
    // An answer of another type than asked is no answer.
    let wrong_type = run_fake_server(
        |q| answer_a(q, Ipv4Addr::LOCALHOST).to_vec().unwrap(),
        RecordKind::Aaaa,
    );
    assert_eq!(wrong_type, Err(DnsError::NoRecords));
}

// ---- zone parsing ----

fn zone_error(zone: &str, records: &[&str]) -> ZoneError {
    let mut specs = BTreeMap::new();
    specs.insert(
        zone.to_string(),
        ZoneSpec {
            records: records.iter().map(|s| s.to_string()).collect(),
        },
    );
    build_zones(&specs).expect_err("zone should be rejected")
}

#[test]
fn zone_error_display() {
    let e = zone_error(
        "example.org",
        &["@ MX 10 mx", "mx A 192.0.2.1", "mx A 999.1.1.1"],
    );
    assert_eq!(e.index, Some(2));
    assert_eq!(
        e.to_string(),
        r#"zone "example.org", record 3 ("mx A 999.1.1.1"): invalid IPv4 address"#
    );
}

#[test]
fn zone_parse_errors_are_precise() {
    let cases: &[(&str, &str)] = &[
        ("", "empty record"),
        ("   ", "empty record"),
        ("mx", "missing record type"),
        ("mx 300", "missing record type"),
        ("mx A", "missing IPv4 address"),
        ("mx A 192.0.2.1 192.0.2.2", "unexpected \"192.0.2.2\" after the A data"),
        ("mx AAAA 192.0.2.1", "invalid IPv6 address"),
        ("mx SRV 0 5 25 mx", "unsupported record type \"SRV\" (expected MX, A, AAAA, TXT, PTR or CNAME)"),
        ("@ MX mx", "invalid MX preference \"mx\" (expected 0-65535)"),
        ("@ MX 70000 mx", "invalid MX preference \"70000\" (expected 0-65535)"),
        ("@ MX 10", "missing MX exchange"),
        ("@ MX 10 a..b", "invalid MX exchange: empty label in \"a..b.example.org\""),
        ("@ TXT", "missing TXT data"),
        ("@ TXT \"unterminated", "unterminated quoted string"),
        ("@ TXT two words", "TXT data must be one bare word or one or more double-quoted strings"),
        ("@ TXT \"quoted\" bare", "TXT data must be one bare word or one or more double-quoted strings"),
        ("@ 99999999999 A 192.0.2.1", "TTL 99999999999 out of range (0-2147483647)"),
        ("\"@\" A 192.0.2.1", "the owner name must not be quoted"),
        ("b@d A 192.0.2.1", "invalid owner name: invalid character '@' in \"b@d.example.org\""),
        ("x.*.y A 192.0.2.1", "invalid owner name: wildcard \"*\" must be the first label in \"x.*.y.example.org\""),
        (
            "l123456789012345678901234567890123456789012345678901234567890123 A 192.0.2.1",
            "invalid owner name: label \"l123456789012345678901234567890123456789012345678901234567890123\" is longer than 63 characters",
        ),
        ("mx.example.com. A 192.0.2.1", "name mx.example.com is outside the zone"),
        ("@ CNAME other.example.", "CNAME not allowed at the zone apex (the apex has the zone's SOA)"),
        ("1 PTR", "missing PTR target"),
        ("w CNAME \"x\"", "CNAME target must not be quoted"),
    ];
    for (line, message) in cases {
        let e = zone_error("example.org", &[line]);
        assert_eq!(e.index, Some(0), "{line:?}");
        assert_eq!(e.record, *line);
        assert_eq!(e.message, *message, "for record {line:?}");
    }
}

#[test]
fn zone_consistency_errors() {
    let e = zone_error(
        "example.org",
        &["www A 192.0.2.1", "www CNAME example.org."],
    );
    assert_eq!(
        e.to_string(),
        r#"zone "example.org", record 2 ("www CNAME example.org."): a CNAME must be the only record at www.example.org (conflicts with record 1)"#
    );
    let e = zone_error("example.org", &["www CNAME a", "www TXT x"]);
    assert_eq!(e.index, Some(1));
    assert!(e.message.starts_with("a CNAME must be the only record"));
    let e = zone_error("example.org", &["www CNAME a", "www CNAME b"]);
    assert_eq!(e.index, Some(1));
    // The same CNAME twice is harmless.
    let mut ok = BTreeMap::new();
    ok.insert(
        "example.org".to_string(),
        ZoneSpec {
            records: vec!["www CNAME a".to_string(), "WWW cname A".to_string()],
        },
    );
    assert!(build_zones(&ok).is_ok());

    // A record shadowed by a more specific zone would never be served.
    let mut specs = BTreeMap::new();
    specs.insert(
        "example.org".to_string(),
        ZoneSpec {
            records: vec!["mx A 192.0.2.1".into(), "a.sub A 192.0.2.2".into()],
        },
    );
    specs.insert("sub.example.org".to_string(), ZoneSpec::default());
    let e = build_zones(&specs).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"zone "example.org", record 2 ("a.sub A 192.0.2.2"): name a.sub.example.org belongs to zone "sub.example.org", which is defined separately"#
    );

    // Zone names.
    let mut specs = BTreeMap::new();
    specs.insert("example.org".to_string(), ZoneSpec::default());
    specs.insert("Example.Org.".to_string(), ZoneSpec::default());
    assert_eq!(
        build_zones(&specs).unwrap_err().to_string(),
        r#"zone "example.org": zone defined twice (also as "Example.Org.")"#
    );
    let mut specs = BTreeMap::new();
    specs.insert("bad name.org".to_string(), ZoneSpec::default());
    assert_eq!(
        build_zones(&specs).unwrap_err().to_string(),
        r#"zone "bad name.org": invalid zone name: invalid character ' ' in "bad name.org""#
    );
}

#[test]
fn zone_spec_rejects_unknown_fields() {
    assert!(toml::from_str::<Doc>("[dns.zones.\"a.org\"]\nrecords = []\nttl = 5\n").is_err());
}

#[test]
fn zones_accessors() {
    let z = zones();
    assert_eq!(
        z.names(),
        vec![
            "2.0.192.in-addr.arpa",
            "example.com",
            "example.org",
            "nomail.example"
        ]
    );
    assert_eq!(z.len(), 4);
    assert!(!z.is_empty());
    assert!(Zones::default().is_empty());
}

#[test]
fn root_zone_from_the_scenario() {
    let mut specs = BTreeMap::new();
    specs.insert(
        ".".to_string(),
        ZoneSpec {
            records: vec!["tld A 192.0.2.77".into(), "x.tld. MX 5 tld.".into()],
        },
    );
    let zones = build_zones(&specs).unwrap();
    assert_eq!(zones.names(), vec![""]);
    let (r, _) = run_world(
        zones,
        Vec::new(),
        vec![
            Q("tld", RecordKind::A),
            Q("x.tld", RecordKind::Mx),
            Q("y.tld", RecordKind::Mx),
        ],
    );
    assert_eq!(
        r,
        vec![
            Ok(vec![Record::A(Ipv4Addr::new(192, 0, 2, 77))]),
            Ok(vec![mx(5, "tld")]),
            Err(DnsError::NxDomain),
        ]
    );
}

/// Every single-byte corruption of a valid query, plus questions the mail server never asks
/// (AXFR, ANY, SOA, class CH), must leave the server answering.
#[test]
fn corrupted_and_odd_queries_never_stop_the_server() {
    use hickory_proto::op::Query as HQuery;
    use hickory_proto::rr::{DNSClass, Name, RecordType};

    let encode = |name: &str, rtype: RecordType, class: DNSClass| {
        let mut m = Message::new(9, MessageType::Query, OpCode::Query);
        let mut q = HQuery::query(Name::from_ascii(name).unwrap(), rtype);
        q.set_query_class(class);
        m.add_query(q);
        m.to_vec().unwrap()
    };
    let valid = encode("www.example.org.", RecordType::MX, DNSClass::IN);
    let mut script = Vec::new();
    for i in 0..valid.len() {
        for v in [0x00, 0x3f, 0xc0, 0xff] {
            let mut bytes = valid.clone();
            bytes[i] = v;
            script.push(Step::Raw(bytes));
        }
    }
    for (name, rtype, class) in [
        ("example.org.", RecordType::AXFR, DNSClass::IN),
        ("example.org.", RecordType::ANY, DNSClass::IN),
        ("example.org.", RecordType::SOA, DNSClass::IN),
        ("nosuch.test.", RecordType::NS, DNSClass::IN),
        ("example.org.", RecordType::MX, DNSClass::CH),
    ] {
        script.push(Step::Raw(encode(name, rtype, class)));
    }
    script.push(Sleep(1));
    script.push(Q("www.example.org", RecordKind::Mx));
    let (r, trace) = run_world(zones(), Vec::new(), script);
    assert_eq!(
        r,
        vec![Ok(vec![
            mx(10, "mx.example.org"),
            mx(20, "mx2.example.org")
        ])]
    );
    assert!(trace.len() > valid.len(), "everything was traced");
}
