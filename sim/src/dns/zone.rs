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
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, PTR, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde::Deserialize;

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

/// A lexical token of a record line.
#[derive(Debug, PartialEq, Eq)]
struct Token {
    text: String,
    /// Was it written in double quotes (TXT character-string)?
    quoted: bool,
}

/// Splits a record line on whitespace; double-quoted strings are one token, with `\"` and
/// `\\` (and `\` before any character) escaping.
fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut text = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated quoted string".to_string()),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(e) => text.push(e),
                        None => return Err("unterminated quoted string".to_string()),
                    },
                    Some(ch) => text.push(ch),
                }
            }
            tokens.push(Token { text, quoted: true });
        } else {
            let mut text = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '"' {
                    break;
                }
                text.push(ch);
                chars.next();
            }
            tokens.push(Token {
                text,
                quoted: false,
            });
        }
    }
    Ok(tokens)
}

/// Parses one record line of the zone `origin`.
fn parse_record(origin: &Name, line: &str) -> Result<Record, String> {
    let tokens = tokenize(line)?;
    let mut it = tokens.iter().peekable();

    let owner = match it.next() {
        None => return Err("empty record".to_string()),
        Some(t) if t.quoted => return Err("the owner name must not be quoted".to_string()),
        Some(t) => parse_name(origin, &t.text).map_err(|m| format!("invalid owner name: {m}"))?,
    };

    let mut ttl = DEFAULT_TTL;
    if let Some(t) = it.peek() {
        if !t.quoted && !t.text.is_empty() && t.text.bytes().all(|b| b.is_ascii_digit()) {
            ttl = t
                .text
                .parse::<u32>()
                .ok()
                .filter(|v| *v <= i32::MAX as u32)
                .ok_or_else(|| format!("TTL {} out of range (0-2147483647)", t.text))?;
            it.next();
        }
    }
    if let Some(t) = it.peek() {
        if !t.quoted && t.text.eq_ignore_ascii_case("IN") {
            it.next();
        }
    }

    let rtype = match it.next() {
        None => return Err("missing record type".to_string()),
        Some(t) if t.quoted => return Err(format!("expected a record type, found {:?}", t.text)),
        Some(t) => t.text.to_ascii_uppercase(),
    };

    // The rdata tokens; every branch below must consume all of them.
    let rdata: Vec<&Token> = it.collect();
    let unquoted = |i: usize, what: &str| -> Result<&str, String> {
        match rdata.get(i) {
            None => Err(format!("missing {what}")),
            Some(t) if t.quoted => Err(format!("{what} must not be quoted")),
            Some(t) => Ok(t.text.as_str()),
        }
    };
    let expect_len = |n: usize| -> Result<(), String> {
        match rdata.get(n) {
            Some(extra) => Err(format!(
                "unexpected {:?} after the {rtype} data",
                extra.text
            )),
            None => Ok(()),
        }
    };

    let data = match rtype.as_str() {
        "A" => {
            let ip: Ipv4Addr = unquoted(0, "IPv4 address")?
                .parse()
                .map_err(|_| "invalid IPv4 address".to_string())?;
            expect_len(1)?;
            RData::A(A(ip))
        }
        "AAAA" => {
            let ip: Ipv6Addr = unquoted(0, "IPv6 address")?
                .parse()
                .map_err(|_| "invalid IPv6 address".to_string())?;
            expect_len(1)?;
            RData::AAAA(AAAA(ip))
        }
        "MX" => {
            let pref = unquoted(0, "MX preference")?;
            let preference: u16 = pref
                .parse()
                .map_err(|_| format!("invalid MX preference {pref:?} (expected 0-65535)"))?;
            let exchange = parse_name(origin, unquoted(1, "MX exchange")?)
                .map_err(|m| format!("invalid MX exchange: {m}"))?;
            expect_len(2)?;
            RData::MX(MX::new(preference, exchange))
        }
        "PTR" => {
            let target = parse_name(origin, unquoted(0, "PTR target")?)
                .map_err(|m| format!("invalid PTR target: {m}"))?;
            expect_len(1)?;
            RData::PTR(PTR(target))
        }
        "CNAME" => {
            let target = parse_name(origin, unquoted(0, "CNAME target")?)
                .map_err(|m| format!("invalid CNAME target: {m}"))?;
            expect_len(1)?;
            RData::CNAME(CNAME(target))
        }
        "TXT" => RData::TXT(parse_txt(&rdata)?),
        other => {
            return Err(format!(
                "unsupported record type {other:?} (expected MX, A, AAAA, TXT, PTR or CNAME)"
            ))
        }
    };
    Ok(Record::from_rdata(owner, ttl, data))
}

/// Fuzz body (`fuzz/fuzz_targets/zone_record.rs`, and a proptest in `cargo test`): one record
/// line of arbitrary bytes, in the zone `example.org.`. It must never panic, and a line the
/// parser accepts must be servable: the record encodes to DNS wire format and decodes back to
/// the same record, owned by a fully qualified name.
pub fn fuzz_zone_record(data: &[u8]) {
    use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
    let line = String::from_utf8_lossy(data);
    let origin = match parse_absolute("example.org.") {
        Ok(o) => o,
        Err(e) => panic!("origin: {e}"),
    };
    let Ok(record) = parse_record(&origin, &line) else {
        return;
    };
    assert!(
        record.name.is_fqdn(),
        "owner {} not fully qualified",
        record.name
    );
    let wire = match record.to_bytes() {
        Ok(w) => w,
        Err(e) => panic!("accepted {line:?} but cannot encode {record}: {e}"),
    };
    match Record::from_bytes(&wire) {
        Ok(back) => assert_eq!(back, record, "wire round trip of {line:?}"),
        Err(e) => panic!("accepted {line:?} but cannot decode {record}: {e}"),
    }
}

/// TXT rdata: one or more quoted strings, or exactly one bare word.
///
/// Each string longer than 255 octets is split into 255-octet character-strings (as zone
/// tools do for DKIM keys); readers concatenate them back, so the split is invisible.
fn parse_txt(rdata: &[&Token]) -> Result<TXT, String> {
    if rdata.is_empty() {
        return Err("missing TXT data".to_string());
    }
    let all_quoted = rdata.iter().all(|t| t.quoted);
    if !all_quoted && rdata.len() > 1 {
        return Err(
            "TXT data must be one bare word or one or more double-quoted strings".to_string(),
        );
    }
    let mut strings: Vec<&[u8]> = Vec::new();
    for t in rdata {
        let bytes = t.text.as_bytes();
        if bytes.is_empty() {
            strings.push(bytes);
        } else {
            strings.extend(bytes.chunks(255));
        }
    }
    Ok(TXT::from_bytes(strings))
}

/// A name in a record line: `@` is the apex, a trailing dot makes it absolute, otherwise it
/// is relative to `origin`. The result is lower-case and fully qualified.
fn parse_name(origin: &Name, s: &str) -> Result<Name, String> {
    if s == "@" {
        return Ok(origin.clone());
    }
    if s.ends_with('.') {
        return parse_absolute(s);
    }
    let apex = super::name_to_string(origin);
    let full = if apex.is_empty() {
        s.to_string()
    } else {
        format!("{s}.{apex}")
    };
    parse_absolute(&full)
}

/// Parses an absolute name (trailing dot optional; `""` and `"."` are the root), checking
/// the rules hickory would otherwise report vaguely or not at all.
pub(crate) fn parse_absolute(s: &str) -> Result<Name, String> {
    let trimmed = s.strip_suffix('.').unwrap_or(s);
    if trimmed.is_empty() {
        return Ok(Name::root());
    }
    if trimmed.len() > 253 {
        return Err(format!("name {s:?} is longer than 253 characters"));
    }
    for (i, label) in trimmed.split('.').enumerate() {
        if label.is_empty() {
            return Err(format!("empty label in {s:?}"));
        }
        if label.len() > 63 {
            return Err(format!("label {label:?} is longer than 63 characters"));
        }
        if label == "*" {
            if i != 0 {
                return Err(format!("wildcard \"*\" must be the first label in {s:?}"));
            }
            continue;
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("invalid character {bad:?} in {s:?}"));
        }
    }
    let lower = format!("{}.", trimmed.to_ascii_lowercase());
    Name::from_ascii(&lower).map_err(|e| format!("invalid name {s:?}: {e}"))
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
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::Servfail => "servfail",
            FaultKind::Timeout => "timeout",
            FaultKind::Nxdomain => "nxdomain",
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

/// The record types a scenario may name.
fn parse_type(s: &str) -> Option<RecordType> {
    Some(match s.to_ascii_uppercase().as_str() {
        "MX" => RecordType::MX,
        "A" => RecordType::A,
        "AAAA" => RecordType::AAAA,
        "TXT" => RecordType::TXT,
        "PTR" => RecordType::PTR,
        "CNAME" => RecordType::CNAME,
        _ => return None,
    })
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
