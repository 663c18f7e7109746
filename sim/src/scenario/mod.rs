//! Scenario files: TOML describing a world and what must happen in it.
//!
//! Parsing is strict (`deny_unknown_fields` everywhere) and every error names the file, the
//! line and the key: a broken scenario must never panic and never silently do nothing.

pub mod bulk;
mod error;
mod expect;
pub use error::line_col;
mod fault;
pub use fault::{Fault, Hosts, IoOps, TraceTrigger, Window};
mod model;
mod retry;

pub use error::ScenarioError;
pub use model::*;
pub use retry::{defers, Answer, Backoff, Retry};

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// A scenario loaded from disk and checked.
#[derive(Clone, Debug)]
pub struct LoadedScenario {
    /// Display name: the path relative to the folder it was found in, without `.toml`.
    pub name: String,
    pub path: PathBuf,
    pub source: String,
    pub scenario: Scenario,
}

/// Reads and validates one scenario file.
pub fn load(path: &Path, name: String) -> Result<LoadedScenario, ScenarioError> {
    // Scenario files are the runner's input, read from the real disk before any world exists.
    #[allow(clippy::disallowed_methods)]
    let source = std::fs::read_to_string(path).map_err(|e| ScenarioError::Io {
        path: path.to_path_buf(),
        error: e.to_string(),
    })?;
    load_source(path, name, source)
}

/// [`load`] for scenario text already in memory (a shrink candidate, an edited file): key
/// and certificate files it names are read relative to `path`'s folder, as for the file.
pub fn load_source(
    path: &Path,
    name: String,
    source: String,
) -> Result<LoadedScenario, ScenarioError> {
    let mut loaded = parse(path, name, source)?;
    // Keys and certificates the scenario names by path are read now, relative to it, like
    // `mailsim serve` reads them relative to its config: the world never sees a real file.
    let base = path.parent().unwrap_or(Path::new("."));
    #[allow(clippy::disallowed_methods)]
    let read = |p: &Path| std::fs::read_to_string(p);
    loaded
        .scenario
        .server
        .get_mut()
        .config
        .read_files(read, base)
        .map_err(|error| ScenarioError::Io {
            path: path.to_path_buf(),
            error,
        })?;
    for actor in &mut loaded.scenario.actor {
        for key in &mut actor.dkim {
            if let (Some(p), None) = (&key.key, &key.key_pem) {
                let file = base.join(p);
                key.key_pem = Some(read(&file).map_err(|error| ScenarioError::Io {
                    path: file.clone(),
                    error: format!("{}: {error}", file.display()),
                })?);
            }
        }
    }
    let LoadedScenario {
        source, scenario, ..
    } = &mut loaded;
    world_dkim(path, source, scenario, true)?;
    Ok(loaded)
}

/// Parses and validates scenario text (the path is only for messages).
pub fn parse(path: &Path, name: String, source: String) -> Result<LoadedScenario, ScenarioError> {
    let scenario: Scenario =
        toml::from_str(&source).map_err(|e| ScenarioError::from_toml(path, &source, &e))?;
    let mut scenario = scenario;
    for (i, b) in scenario.bulk.iter().enumerate() {
        b.get_ref()
            .check()
            .map_err(|e| ScenarioError::at(path, &source, b.span(), &format!("bulk[{i}]"), e))?;
    }
    let bulk: Vec<Actor> = scenario
        .bulk
        .iter()
        .flat_map(|b| b.get_ref().actors(b.span()))
        .collect();
    scenario.actor.extend(bulk);
    validate(path, &source, &scenario)?;
    world_dkim(path, &source, &mut scenario, false)?;
    Ok(LoadedScenario {
        name,
        path: path.to_path_buf(),
        source,
        scenario,
    })
}

/// The world's side of the server's `[[dkim]]` keys: each must load (an error names
/// `server.dkim[i]`), its selector record is published in the zones (`dns::dkim`), and
/// every remote learns where the world's DNS is, to look keys up when it verifies. Before
/// the loader has read key files (`files_read` false), entries without inline PEM wait.
fn world_dkim(
    path: &Path,
    source: &str,
    s: &mut Scenario,
    files_read: bool,
) -> Result<(), ScenarioError> {
    let mut records = Vec::new();
    for (i, c) in s.server.get_ref().config.dkim.iter().enumerate() {
        if c.key_pem.is_none() && !files_read {
            continue;
        }
        let key = mailsim_server::dkim::SigningKey::load(i, c).map_err(|e| {
            ScenarioError::at(
                path,
                source,
                s.server.span(),
                &format!("server.dkim[{i}]"),
                e.to_string(),
            )
        })?;
        records.push((key.dns_name(), key.dns_record(), key.domain.clone()));
    }
    // The actors' keys: the selector records of the domains they send for.
    for actor in &s.actor {
        for (i, c) in actor.dkim.iter().enumerate() {
            if c.key_pem.is_none() && !files_read {
                continue;
            }
            let key = mailsim_server::dkim::SigningKey::load(i, c).map_err(|e| {
                ScenarioError::at(
                    path,
                    source,
                    actor.name.span(),
                    &format!("actor.dkim[{i}]"),
                    e.to_string(),
                )
            })?;
            records.push((key.dns_name(), key.dns_record(), key.domain.clone()));
        }
    }
    crate::dns::dkim::publish(&mut s.dns.zones, &records);
    let dns = std::net::SocketAddr::new(s.dns_ip(), crate::dns::server::DNS_PORT);
    let mx = s.server_addr();
    for r in &mut s.remote {
        r.get_mut().dns = Some(dns);
        r.get_mut().mx = Some(mx);
    }
    Ok(())
}

/// An `attempts` or `gave_up` expectation that the actor's `retry` (or its absence) could
/// never meet is a mistake in the scenario, not a run to fail.
fn attempts_possible(s: &Scenario, actor: &str, x: &Expect) -> Result<(), String> {
    let retry = s
        .actor
        .iter()
        .find(|a| a.name.get_ref() == actor)
        .and_then(|a| a.retry.as_ref())
        .map(|r| r.get_ref());
    let most = retry.map_or(1, |r| r.attempts);
    if let Some(n) = x.attempts {
        if n == 0 || n > most {
            return Err(format!(
                "attempts = {n}: actor {actor:?} makes 1 to {most} attempts (its retry.attempts; 1 without retry)"
            ));
        }
    }
    if x.gave_up == Some(true) {
        if retry.is_none() {
            return Err(format!(
                "gave_up = true: actor {actor:?} has no retry, so it never gives up"
            ));
        }
        if let Some(n) = x.attempts.filter(|n| *n != most) {
            return Err(format!(
                "gave_up = true with attempts = {n}: an actor gives up only after all {most}"
            ));
        }
    }
    Ok(())
}

/// Checks what serde cannot: references between sections, addresses, the server config.
fn validate(path: &Path, source: &str, s: &Scenario) -> Result<(), ScenarioError> {
    let err = |span: std::ops::Range<usize>, key: &str, msg: String| {
        ScenarioError::at(path, source, span, key, msg)
    };
    if let Err(e) = s.server.get_ref().config.validate() {
        return Err(err(s.server.span(), "server", e.to_string()));
    }
    let mut names = BTreeSet::new();
    let mut addrs: BTreeSet<IpAddr> = BTreeSet::new();
    addrs.insert(s.server_ip());
    addrs.insert(s.dns_ip());
    if s.server_ip() == s.dns_ip() {
        return Err(err(
            s.server.span(),
            "server.listen.smtp",
            "the server and the DNS host need different addresses".into(),
        ));
    }
    let mut actor_addrs: BTreeSet<IpAddr> = BTreeSet::new();
    for a in &s.actor {
        actor_addrs.insert(*a.address.get_ref());
        if !names.insert(a.name.get_ref().clone()) {
            return Err(err(
                a.name.span(),
                "actor.name",
                format!("duplicate actor name {:?}", a.name.get_ref()),
            ));
        }
        // Actors may share an address (several connections from one client host: a burst,
        // the concurrency limit); no other host may use an actor's.
        let ip = *a.address.get_ref();
        if !addrs.insert(ip) && !actor_addrs.contains(&ip) {
            return Err(err(
                a.address.span(),
                "actor.address",
                format!(
                    "address {} is already used by another host",
                    a.address.get_ref()
                ),
            ));
        }
        if let Err(msg) = a.target.get_ref().parse::<Target>() {
            return Err(err(a.target.span(), "actor.target", msg));
        }
        for (i, step) in a.steps.iter().enumerate() {
            if let Err(msg) = step.get_ref().check() {
                return Err(err(step.span(), &format!("actor.steps[{i}]"), msg));
            }
        }
        if let Some(r) = &a.retry {
            if let Err(msg) = r.get_ref().check() {
                return Err(err(r.span(), "actor.retry", msg));
            }
        }
    }
    let mut remotes = BTreeSet::new();
    for (i, r) in s.remote.iter().enumerate() {
        let spec = r.get_ref();
        if !remotes.insert(spec.name.clone()) {
            return Err(err(
                r.span(),
                &format!("remote[{i}].name"),
                format!("duplicate remote name {:?}", spec.name),
            ));
        }
        if !addrs.insert(spec.address) {
            return Err(err(
                r.span(),
                &format!("remote[{i}].address"),
                format!("address {} is already used by another host", spec.address),
            ));
        }
        if let Err(msg) = spec.check() {
            return Err(err(r.span(), &format!("remote[{i}]"), msg));
        }
    }
    if let Err(e) = crate::dns::zone::build_zones(&s.dns.zones) {
        // toml cannot span a dotted table's map, so find the record (or the zone header)
        // in the text: the record string is quoted exactly as written.
        let quoted = format!("{:?}", e.record);
        let at = (!e.record.is_empty())
            .then(|| source.find(&quoted))
            .flatten()
            .or_else(|| source.find(&format!("zones.{:?}", e.zone)))
            .or_else(|| source.find("[dns"))
            .unwrap_or(0);
        let key = format!("dns.zones.{:?}.records", e.zone);
        return Err(err(at..at, &key, e.to_string()));
    }
    for (i, c) in s.dns.change.iter().enumerate() {
        let x = c.get_ref();
        let key = format!("dns.change[{i}]");
        if let Err(m) = x.at_secs.check() {
            return Err(err(c.span(), &key, format!("at_secs {m}")));
        }
        if !s.dns.zones.contains_key(&x.zone) {
            let known: Vec<&String> = s.dns.zones.keys().collect();
            let msg = format!("no zone {:?} in [dns.zones] (zones: {known:?})", x.zone);
            return Err(err(c.span(), &format!("{key}.zone"), msg));
        }
        let mut zones = s.dns.zones.clone();
        zones.insert(
            x.zone.clone(),
            crate::dns::zone::ZoneSpec {
                records: x.records.clone(),
            },
        );
        if let Err(e) = crate::dns::zone::build_zones(&zones) {
            return Err(err(c.span(), &format!("{key}.records"), e.to_string()));
        }
    }
    for (i, e) in s.expect.iter().enumerate() {
        let x = e.get_ref();
        if let Some(actor) = &x.actor {
            if !names.contains(actor.get_ref()) {
                return Err(err(
                    actor.span(),
                    &format!("expect[{i}].actor"),
                    format!("no actor named {:?} (actors: {:?})", actor.get_ref(), names),
                ));
            }
            if let Err(msg) = attempts_possible(s, actor.get_ref(), x) {
                return Err(err(e.span(), &format!("expect[{i}]"), msg));
            }
        }
        if let Some(remote) = &x.remote {
            if !remotes.contains(remote.get_ref()) {
                return Err(err(
                    remote.span(),
                    &format!("expect[{i}].remote"),
                    format!(
                        "no remote named {:?} (remotes: {:?})",
                        remote.get_ref(),
                        remotes
                    ),
                ));
            }
        }
        if let Err(msg) = x.check() {
            return Err(err(e.span(), &format!("expect[{i}]"), msg));
        }
    }
    let mut hosts: BTreeSet<&str> = ["server", "dns"].into_iter().collect();
    hosts.extend(s.actor.iter().map(|a| a.name.get_ref().as_str()));
    hosts.extend(s.remote.iter().map(|r| r.get_ref().name.as_str()));
    for (i, f) in s.fault.iter().enumerate() {
        let x = f.get_ref();
        let key = format!("fault[{i}]");
        if let Err(msg) = x.check() {
            return Err(err(f.span(), &key, format!("{}: {msg}", x.kind())));
        }
        for (side, group) in x.hosts() {
            let names = group.names();
            if names.is_empty() {
                return Err(err(
                    f.span(),
                    &format!("{key}.{side}"),
                    "names no host".into(),
                ));
            }
            if let Some(unknown) = names.iter().find(|n| !hosts.contains(**n)) {
                return Err(err(
                    f.span(),
                    &format!("{key}.{side}"),
                    format!("no host named {unknown:?} (hosts: {hosts:?})"),
                ));
            }
        }
    }
    if !(s.world.fs_latency_ms >= 0.0 && s.world.fs_latency_ms <= 60_000.0) {
        return Err(ScenarioError::at(
            path,
            source,
            0..0,
            "world.fs_latency_ms",
            "must be between 0 and 60000".into(),
        ));
    }
    if !(0.0..=1.0).contains(&s.world.fs_sync_probability) {
        return Err(ScenarioError::at(
            path,
            source,
            0..0,
            "world.fs_sync_probability",
            "must be between 0 and 1".into(),
        ));
    }
    if s.expect.is_empty() {
        return Err(ScenarioError::at(
            path,
            source,
            0..0,
            "expect",
            "a scenario needs at least one [[expect]]: a run that checks nothing cannot fail"
                .into(),
        ));
    }
    Ok(())
}
