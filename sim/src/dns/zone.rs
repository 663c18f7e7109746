//! Zone data from the scenario file, and DNS faults.
//!
//! A scenario describes its DNS as one list of record lines per zone:
//!
//! ```toml
//! [dns.zones."example.org"]
//! records = [
//!   "@ MX 10 mx.example.org.",
//!   "mx A 192.0.2.1",
//!   "@ TXT \"v=spf1 ip4:192.0.2.0/24 -all\"",
//! ]
//! ```
//!
//! Record line grammar: `<name> [ttl] [IN] <TYPE> <rdata>`. `@` is the zone apex, a name ending
//! in `.` is absolute, anything else is relative to the zone. TYPE is one of MX, A, AAAA, TXT,
//! PTR, CNAME (any case). TXT rdata is one or more double-quoted strings (concatenated by the
//! reader, split into 255-octet character-strings on the wire) or one bare word. `@ MX 0 .` is
//! a null MX (RFC 7505).
//!
//! We parse the lines ourselves instead of using hickory's zone-file parser so that every
//! mistake in a scenario gets a precise message naming the zone, the record and the problem,
//! and so that bad input can never panic the runner.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde::Deserialize;

pub use super::record::fuzz_zone_record;
pub(crate) use super::record::parse_absolute;
use super::record::{parse_record, parse_type};

/// TTL of records written without one. Nothing in the sim caches, so it is only cosmetic.
pub const DEFAULT_TTL: u32 = 3600;

/// One zone as written in the scenario file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSpec {
    /// Record lines, see the module docs for the grammar.
    pub records: Vec<String>,
}

/// What went wrong in the zone data: which zone, which record, what.
///
/// `Display` gives e.g. `zone "example.org", record 3 ("mx A 999.1.1.1"): invalid IPv4
/// address`; the record number there is 1-based (the third entry of `records`), while
/// [`ZoneError::index`] is the 0-based position, for callers that map it back to a file line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneError {
    /// The zone's name as written in the scenario (the TOML key).
    pub zone: String,
    /// 0-based position in the zone's `records`; `None` when the zone itself is wrong.
    pub index: Option<usize>,
    /// The record line as written; empty when `index` is `None`.
    pub record: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(
                f,
                "zone {:?}, record {} ({:?}): {}",
                self.zone,
                i + 1,
                self.record,
                self.message
            ),
            None => write!(f, "zone {:?}: {}", self.zone, self.message),
        }
    }
}

impl std::error::Error for ZoneError {}

/// One zone, ready to load into a hickory zone handler.
#[derive(Clone, Debug)]
pub(crate) struct Zone {
    /// The apex, lower-case, fully qualified.
    pub(crate) origin: Name,
    /// Every record of the zone except the synthetic SOA, in scenario order.
    pub(crate) records: Vec<Record>,
}

impl Zone {
    /// The SOA every authoritative zone needs (hickory puts it in the authority section of
    /// negative answers). Scenarios cannot write one: nothing in mail depends on its contents.
    pub(crate) fn soa(&self) -> Record {
        // Unwrap-free: these are constant, valid names.
        let mname = Name::from_ascii("ns.mailsim.invalid.").unwrap_or_else(|_| Name::root());
        let rname =
            Name::from_ascii("hostmaster.mailsim.invalid.").unwrap_or_else(|_| Name::root());
        Record::from_rdata(
            self.origin.clone(),
            DEFAULT_TTL,
            RData::SOA(SOA::new(mname, rname, 1, 3600, 600, 86400, 300)),
        )
    }
}

/// Every zone of the world, validated. Cheap to clone (the DNS host's closure clones it on
/// each (re)start).
#[derive(Clone, Debug, Default)]
pub struct Zones {
    /// Sorted by zone name, so everything built from it is built in a stable order.
    pub(crate) zones: Vec<Zone>,
}

impl Zones {
    /// The zone names, lower-case without trailing dot (the root zone is `""`), sorted.
    pub fn names(&self) -> Vec<String> {
        self.zones
            .iter()
            .map(|z| super::name_to_string(&z.origin))
            .collect()
    }

    /// Number of zones (not counting the implicit empty root zone the server adds).
    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// No zone at all: every name is NXDOMAIN.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }
}

impl Zones {
    /// Answers one question from the zone data directly, without a world (for `mailsim
    /// admin check --scenario`): the records of `kind` at `name`, CNAMEs followed (up to 8),
    /// NODATA when the name exists without such records, NXDOMAIN otherwise. For PTR, `name`
    /// may be an IP address. DNS faults are not applied: they happen at a time in a world.
    pub fn lookup(
        &self,
        name: &str,
        kind: mailsim_server::env::RecordKind,
    ) -> Result<Vec<mailsim_server::env::Record>, mailsim_server::env::DnsError> {
        use mailsim_server::env::{DnsError, Record as R, RecordKind as K};
        let name = match (kind, name.parse::<std::net::IpAddr>()) {
            (K::Ptr, Ok(ip)) => mailsim_server::admin::records::reverse_name(ip),
            _ => name.to_string(),
        };
        let mut qname = parse_absolute(&name).map_err(|_| DnsError::NxDomain)?;
        for _ in 0..8 {
            let Some(zone) = self
                .zones
                .iter()
                .filter(|z| z.origin.zone_of(&qname))
                .max_by_key(|z| z.origin.num_labels())
            else {
                return Err(DnsError::NxDomain);
            };
            let here: Vec<&Record> = zone.records.iter().filter(|r| r.name == qname).collect();
            if let Some(RData::CNAME(target)) = here.first().map(|r| &r.data) {
                qname = target.0.clone();
                continue;
            }
            let found: Vec<R> = here
                .iter()
                .filter_map(|r| match (kind, &r.data) {
                    (K::Mx, RData::MX(mx)) => Some(R::Mx {
                        preference: mx.preference,
                        exchange: super::name_to_string(&mx.exchange),
                    }),
                    (K::A, RData::A(a)) => Some(R::A(a.0)),
                    (K::Aaaa, RData::AAAA(a)) => Some(R::Aaaa(a.0)),
                    (K::Txt, RData::TXT(t)) => Some(R::Txt(super::txt_to_string(t))),
                    (K::Ptr, RData::PTR(p)) => Some(R::Ptr(super::name_to_string(&p.0))),
                    _ => None,
                })
                .collect();
            return if !found.is_empty() {
                Ok(found)
            } else if !here.is_empty() || qname == zone.origin {
                Err(DnsError::NoRecords)
            } else {
                Err(DnsError::NxDomain)
            };
        }
        Err(DnsError::Temporary("CNAME chain too long".to_string()))
    }
}

/// Parses and validates every zone of a scenario.
///
/// Besides the syntax of each line this checks what would otherwise make the world's DNS
/// silently differ from what the scenario says: owner names outside their zone or shadowed by
/// a more specific zone, CNAMEs sharing a name with other records (RFC 1034 §3.6.2) or at an
/// apex, and the same zone written twice.
pub fn build_zones(zones: &BTreeMap<String, ZoneSpec>) -> Result<Zones, ZoneError> {
    // Zone names first: the shadowing check needs all of them.
    let mut origins: Vec<(Name, &String, &ZoneSpec)> = Vec::with_capacity(zones.len());
    for (key, spec) in zones {
        let zone_err = |message: String| ZoneError {
            zone: key.clone(),
            index: None,
            record: String::new(),
            message,
        };
        let origin =
            parse_absolute(key).map_err(|m| zone_err(format!("invalid zone name: {m}")))?;
        if let Some((_, other, _)) = origins.iter().find(|(o, _, _)| *o == origin) {
            return Err(zone_err(format!("zone defined twice (also as {other:?})")));
        }
        origins.push((origin, key, spec));
    }

    let all_origins: Vec<Name> = origins.iter().map(|(o, _, _)| o.clone()).collect();
    let mut out = Vec::with_capacity(origins.len());
    for (origin, key, spec) in &origins {
        out.push(build_zone(origin, key, spec, &all_origins)?);
    }
    out.sort_by_key(|z| super::name_to_string(&z.origin));
    Ok(Zones { zones: out })
}

/// What we know about the records at one owner name, for the CNAME exclusivity check.
struct OwnerInfo {
    /// Index of the first CNAME at this name.
    cname: Option<usize>,
    /// Index of the first non-CNAME record at this name.
    other: Option<usize>,
}

fn build_zone(
    origin: &Name,
    key: &str,
    spec: &ZoneSpec,
    all_origins: &[Name],
) -> Result<Zone, ZoneError> {
    let mut records = Vec::with_capacity(spec.records.len());
    let mut owners: HashMap<Name, OwnerInfo> = HashMap::new();
    for (index, line) in spec.records.iter().enumerate() {
        let err = |message: String| ZoneError {
            zone: key.to_string(),
            index: Some(index),
            record: line.clone(),
            message,
        };
        let record = parse_record(origin, line).map_err(err)?;

        // The owner must be in this zone and not in a more specific one, or the record would
        // never be served.
        if !origin.zone_of(&record.name) {
            return Err(err(format!(
                "name {} is outside the zone",
                super::name_for_trace(&record.name)
            )));
        }
        if let Some(inner) = all_origins
            .iter()
            .filter(|o| *o != origin && origin.zone_of(o) && o.zone_of(&record.name))
            .max_by_key(|o| o.num_labels())
        {
            return Err(err(format!(
                "name {} belongs to zone {:?}, which is defined separately",
                super::name_for_trace(&record.name),
                super::name_to_string(inner)
            )));
        }

        let is_cname = record.record_type() == RecordType::CNAME;
        if is_cname && record.name == *origin {
            return Err(err(
                "CNAME not allowed at the zone apex (the apex has the zone's SOA)".to_string(),
            ));
        }
        let info = owners.entry(record.name.clone()).or_insert(OwnerInfo {
            cname: None,
            other: None,
        });
        let conflict = if is_cname {
            match (info.cname, info.other) {
                (Some(first), _) if records.get(first) != Some(&record) => Some(first),
                (_, Some(first)) => Some(first),
                _ => None,
            }
        } else {
            info.cname
        };
        if let Some(first) = conflict {
            return Err(err(format!(
                "a CNAME must be the only record at {} (conflicts with record {})",
                super::name_for_trace(&record.name),
                first + 1
            )));
        }
        if is_cname {
            info.cname.get_or_insert(index);
        } else {
            info.other.get_or_insert(index);
        }
        // Keep indices aligned with `spec.records` for the conflict lookup above.
        records.push(record);
    }
    Ok(Zone {
        origin: origin.clone(),
        records,
    })
}

/// What a [`DnsFault`] does while it is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// Answer SERVFAIL: the resolver must treat it as a temporary failure.
    Servfail,
    /// Send no answer at all: the client's timeout fires.
    Timeout,
    /// Answer NXDOMAIN even though the name exists (a broken or hijacked zone).
    Nxdomain,
    /// Answer correctly, but only after `delay_ms` of simulated time (a slow or overloaded
    /// resolver). The world's DNS answers one question at a time, so questions behind a
    /// slow one wait too, as behind a congested resolver.
    Slow,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::Servfail => "servfail",
            FaultKind::Timeout => "timeout",
            FaultKind::Nxdomain => "nxdomain",
            FaultKind::Slow => "slow",
        })
    }
}

/// A scheduled DNS failure: while active, questions about `name` (exactly that name, any
/// case, trailing dot optional) of type `record` (MX, A, ... or `all`/absent for every type)
/// get the fault instead of the zone's answer.
///
/// Active from `from_secs` (inclusive) until `until_secs` (exclusive; absent = forever), in
/// simulated seconds since the world started (`SimClock::elapsed`, warps included). Faults
/// apply to the question's name only, not to CNAME targets chased on the way.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsFault {
    pub name: String,
    pub kind: FaultKind,
    #[serde(default)]
    pub record: Option<String>,
    #[serde(default)]
    pub from_secs: f64,
    #[serde(default)]
    pub until_secs: Option<f64>,
    /// For `slow`: how long each answer is held back, in milliseconds.
    #[serde(default)]
    pub delay_ms: Option<f64>,
}

/// `[[dns.change]]`: from `at_secs` on (a number or a `[from, to]` range the seed picks
/// from), the zone `zone` (a key of `[dns.zones]`) has these `records` instead — an MX moved
/// to a new host, say. The server's resolver sees the change on its next question.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsChange {
    pub at_secs: crate::scenario::Secs,
    pub zone: String,
    pub records: Vec<String>,
}

/// The zone data of each epoch: the scenario's zones from 0, then after each change (in
/// time order, times picked from `seed`) the zones with that change applied. Errors name
/// the change's zone as a zone error would.
pub fn epochs(
    zones: &BTreeMap<String, ZoneSpec>,
    changes: &[DnsChange],
    seed: u64,
) -> Result<Vec<(f64, Zones)>, ZoneError> {
    let mut timed: Vec<(f64, &DnsChange)> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.at_secs.pick(seed, 0xD4_5C00 + i as u64), c))
        .collect();
    timed.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut specs = zones.clone();
    let mut out = vec![(0.0, build_zones(&specs)?)];
    for (at, change) in timed {
        specs.insert(
            change.zone.clone(),
            ZoneSpec {
                records: change.records.clone(),
            },
        );
        out.push((at, build_zones(&specs)?));
    }
    Ok(out)
}

impl DnsFault {
    /// Checks the fault makes sense; the scenario loader should call it to report mistakes
    /// early ([`super::serve`] refuses to start with an invalid fault).
    pub fn check(&self) -> Result<(), String> {
        parse_absolute(&self.name).map_err(|m| format!("DNS fault: invalid name: {m}"))?;
        if let Some(r) = &self.record {
            if !r.eq_ignore_ascii_case("all") && parse_type(r).is_none() {
                return Err(format!(
                    "DNS fault for {:?}: unknown record type {r:?} (expected MX, A, AAAA, TXT, \
                     PTR, CNAME or all)",
                    self.name
                ));
            }
        }
        if !self.from_secs.is_finite() || self.from_secs < 0.0 {
            return Err(format!(
                "DNS fault for {:?}: from_secs must be a non-negative number",
                self.name
            ));
        }
        match (self.kind, self.delay_ms) {
            (FaultKind::Slow, Some(d)) if (0.0..=600_000.0).contains(&d) => {}
            (FaultKind::Slow, _) => {
                return Err(format!(
                    "DNS fault for {:?}: slow needs delay_ms between 0 and 600000",
                    self.name
                ))
            }
            (_, Some(_)) => {
                return Err(format!(
                    "DNS fault for {:?}: delay_ms goes with kind = \"slow\"",
                    self.name
                ))
            }
            (_, None) => {}
        }
        if let Some(until) = self.until_secs {
            if until.is_nan() || until < self.from_secs {
                return Err(format!(
                    "DNS fault for {:?}: until_secs must not be before from_secs",
                    self.name
                ));
            }
        }
        Ok(())
    }

    /// Does this fault hit a question for `name` (lower-case, no trailing dot) of `rtype` at
    /// `elapsed_secs`?
    pub(crate) fn applies(&self, name: &str, rtype: RecordType, elapsed_secs: f64) -> bool {
        let fault_name = self.name.trim_end_matches('.');
        if !fault_name.eq_ignore_ascii_case(name) {
            return false;
        }
        let type_matches = match &self.record {
            None => true,
            Some(r) if r.eq_ignore_ascii_case("all") => true,
            Some(r) => parse_type(r) == Some(rtype),
        };
        type_matches
            && elapsed_secs >= self.from_secs
            && self.until_secs.is_none_or(|until| elapsed_secs < until)
    }
}

#[cfg(test)]
mod tests {
    use super::fuzz_zone_record;

    #[test]
    fn fuzz_body_accepts_and_round_trips_every_record_type() {
        for line in [
            "@ MX 10 mx.example.org.",
            "mx 300 IN A 192.0.2.1",
            "v6 AAAA 2001:db8::1",
            "@ TXT \"v=spf1 -all\" \"second\"",
            "_dmarc TXT p=reject",
            "1.2.0.192.in-addr.arpa. PTR mx.example.org.",
            "www CNAME @",
            "@ MX 0 .",
            "",
            "\"quoted\" A 1.2.3.4",
            "x A 999.1.1.1",
        ] {
            fuzz_zone_record(line.as_bytes());
        }
        let long = format!("@ TXT \"{}\"", "k".repeat(1000));
        fuzz_zone_record(long.as_bytes());
    }

    proptest::proptest! {
        /// The fuzz target's body on arbitrary bytes.
        #[test]
        fn fuzz_body(data in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            fuzz_zone_record(&data);
        }

        /// Lines shaped like records reach the rdata parsers that uniform bytes rarely do.
        #[test]
        fn fuzz_body_on_record_like_lines(
            owner in "(@|[a-z0-9.\\-_*]{0,70}\\.?)",
            ttl in "([0-9]{1,11} )?(IN )?",
            kind in "(MX|A|AAAA|TXT|PTR|CNAME|mx|txt)",
            rdata in "[ -~]{0,80}",
        ) {
            fuzz_zone_record(format!("{owner} {ttl}{kind} {rdata}").as_bytes());
        }
    }
}

#[cfg(test)]
mod lookup_tests {
    use super::{build_zones, ZoneSpec};
    use mailsim_server::env::{DnsError, Record, RecordKind as K};
    use std::collections::BTreeMap;

    #[test]
    fn lookup_answers_from_the_zone_data_like_the_world_would() {
        let mut specs = BTreeMap::new();
        let zone = |r: &[&str]| ZoneSpec {
            records: r.iter().map(|s| s.to_string()).collect(),
        };
        specs.insert(
            "example.org".to_string(),
            zone(&[
                "@ MX 10 mx.example.org.",
                "mx A 192.0.2.1",
                "@ TXT \"v=spf1 \" \"mx -all\"",
                "www CNAME mx",
            ]),
        );
        specs.insert(
            "2.0.192.in-addr.arpa".to_string(),
            zone(&["1 PTR mx.example.org."]),
        );
        let z = build_zones(&specs).unwrap();
        assert_eq!(
            z.lookup("EXAMPLE.org", K::Mx),
            Ok(vec![Record::Mx {
                preference: 10,
                exchange: "mx.example.org".into()
            }])
        );
        assert_eq!(
            z.lookup("example.org", K::Txt),
            Ok(vec![Record::Txt("v=spf1 mx -all".into())])
        );
        assert_eq!(
            z.lookup("www.example.org", K::A),
            Ok(vec![Record::A([192, 0, 2, 1].into())])
        );
        assert_eq!(
            z.lookup("192.0.2.1", K::Ptr),
            Ok(vec![Record::Ptr("mx.example.org".into())])
        );
        assert_eq!(z.lookup("mx.example.org", K::Txt), Err(DnsError::NoRecords));
        assert_eq!(z.lookup("example.org", K::A), Err(DnsError::NoRecords));
        assert_eq!(z.lookup("nope.example.org", K::A), Err(DnsError::NxDomain));
        assert_eq!(z.lookup("example.com", K::Mx), Err(DnsError::NxDomain));
    }
}
