//! Expectations, checked against the finished world: mailbox contents (read from the server
//! host's simulated disk), what actors saw, and the trace.

use std::path::Path;

use mailsim_server::mail::Folder;

use mail_parser::MessageParser;

use crate::scenario::{Expect, LoadedScenario};
use crate::world::WorldResult;

/// One expectation that did not hold.
#[derive(Clone, Debug)]
pub struct Failure {
    /// What was expected, in words.
    pub expectation: String,
    /// What was found instead.
    pub found: String,
    /// A trace line index this failure is about (for the excerpt), if one is known.
    pub trace_line: Option<usize>,
}

/// A stored message, read back from the server's disk.
pub struct StoredMessage {
    pub id: String,
    pub bytes: Vec<u8>,
}

/// Reads every message of a mailbox from the server host's simulated filesystem.
pub fn read_mailbox(world: &WorldResult, mailbox: &str) -> Result<Vec<StoredMessage>, String> {
    read_folder(world, mailbox, Folder::Inbox)
}

/// Reads every message of one folder of a mailbox.
pub fn read_folder(
    world: &WorldResult,
    mailbox: &str,
    folder: Folder,
) -> Result<Vec<StoredMessage>, String> {
    use turmoil::fs::shim::std::fs as simfs;
    let Some(fs) = &world.server_fs else {
        return Err("the server never started, so it has no disk".into());
    };
    let key = mailbox.to_ascii_lowercase();
    let dir = match mailsim_server::store::folder_dir(&key, folder) {
        Ok(d) => Path::new("/data").join(d),
        Err(e) => return Err(e.to_string()),
    };
    let _guard = fs.enter();
    let entries = match simfs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => return Err(format!("mailbox {mailbox}: {e}")),
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for id in names {
        let bytes = simfs::read(dir.join(&id)).map_err(|e| format!("reading {id}: {e}"))?;
        out.push(StoredMessage { id, bytes });
    }
    Ok(out)
}

/// Checks every expectation and every actor's inline expectations.
pub fn check(scn: &LoadedScenario, world: &WorldResult) -> Vec<Failure> {
    let mut failures = Vec::new();
    let trace_lines = world.trace.lines();
    if let Some(e) = &world.error {
        failures.push(Failure {
            expectation: "every host runs without error".into(),
            found: e.clone(),
            trace_line: Some(trace_lines.len().saturating_sub(1)),
        });
    }
    // Inline expectations of actors, unless the scenario says that actor is meant to fail.
    let logs = world.logs.lock().unwrap().clone();
    for actor in &scn.scenario.actor {
        let name = actor.name.get_ref();
        let excused = actor.may_fail
            || scn.scenario.expect.iter().any(|e| {
                let e = e.get_ref();
                e.actor.as_ref().is_some_and(|a| a.get_ref() == name) && e.completed == Some(false)
            });
        let Some(log) = logs.get(name) else {
            failures.push(Failure {
                expectation: format!("actor {name} runs"),
                found: "it never started".into(),
                trace_line: None,
            });
            continue;
        };
        if !excused {
            for f in &log.failures {
                failures.push(Failure {
                    expectation: format!("actor {name}: every step as scripted"),
                    found: f.clone(),
                    trace_line: find_line(&trace_lines, &[name, "FAILED"]),
                });
            }
            let give_up_expected = scn.scenario.expect.iter().any(|e| {
                let e = e.get_ref();
                e.actor.as_ref().is_some_and(|a| a.get_ref() == name) && e.gave_up == Some(true)
            });
            if let (Some(why), false) = (&log.gave_up, give_up_expected) {
                failures.push(Failure {
                    expectation: format!("actor {name} delivers within its retry.attempts"),
                    found: why.clone(),
                    trace_line: find_line(&trace_lines, &[name, "gave up after"]),
                });
            }
            if !log.finished && log.failures.is_empty() && log.gave_up.is_none() {
                failures.push(Failure {
                    expectation: format!("actor {name} finishes its script"),
                    found: "it was still running when the world stopped".into(),
                    trace_line: find_last(&trace_lines, name),
                });
            }
        }
    }
    for e in &scn.scenario.expect {
        if let Some(f) = check_one(e.get_ref(), world, &trace_lines, &logs) {
            failures.push(f);
        }
    }
    failures
}

fn check_one(
    e: &Expect,
    world: &WorldResult,
    trace: &[String],
    logs: &std::collections::BTreeMap<String, crate::actor::ActorLog>,
) -> Option<Failure> {
    let fail = |found: String, line: Option<usize>| {
        Some(Failure {
            expectation: e.describe(),
            found,
            trace_line: line,
        })
    };
    if let Some(mailbox) = &e.mailbox {
        let folder = e
            .folder
            .as_deref()
            .and_then(Folder::from_name)
            .unwrap_or_default();
        let shown = match folder {
            Folder::Inbox => mailbox.to_ascii_lowercase(),
            f => format!("{}/{}", mailbox.to_ascii_lowercase(), f.name()),
        };
        let store_line = find_last(trace, &format!("commit {shown} "));
        let msgs = match read_folder(world, mailbox, folder) {
            Ok(m) => m,
            Err(err) => return fail(err, store_line),
        };
        if let Some(c) = e.count {
            if msgs.len() != c {
                return fail(
                    format!("{} message(s)", msgs.len()),
                    store_line.or(Some(trace.len().saturating_sub(1))),
                );
            }
        }
        if let Some(lacks) = &e.body_lacks {
            if let Some(m) = msgs.iter().find(|m| contains(&m.bytes, lacks)) {
                return fail(format!("message {} contains it", m.id), store_line);
            }
        }
        if e.header.is_some() || e.body_contains.is_some() || e.contains.is_some() {
            let ok = msgs.iter().any(|m| message_matches(m, e));
            if !ok {
                let summary: Vec<String> = msgs.iter().map(summarize).collect();
                return fail(
                    if summary.is_empty() {
                        "the mailbox is empty".into()
                    } else {
                        format!("no message matches; messages: {}", summary.join(" | "))
                    },
                    store_line,
                );
            }
        }
        return None;
    }
    if let Some(actor) = &e.actor {
        let name = actor.get_ref();
        let log = logs.get(name).cloned().unwrap_or_default();
        let line = find_last(trace, name);
        if let Some(p) = &e.saw_reply {
            let pat = crate::scenario::ReplyPattern(p.clone());
            if !log.replies.iter().any(|r| pat.matches(r)) {
                return fail(format!("replies seen: {:?}", log.replies), line);
            }
        }
        if let Some(p) = &e.never_saw_reply {
            let pat = crate::scenario::ReplyPattern(p.clone());
            if let Some(r) = log.replies.iter().find(|r| pat.matches(r)) {
                return fail(format!("it saw {r:?}"), line);
            }
        }
        if let Some(n) = e.attempts {
            if log.attempts != n {
                return fail(
                    format!("{} attempt(s)", log.attempts),
                    find_last(trace, &format!("{name:<12} actor  connect")).or(line),
                );
            }
        }
        if let Some(g) = e.gave_up {
            if log.gave_up.is_some() != g {
                return fail(
                    match &log.gave_up {
                        Some(why) => why.clone(),
                        None => format!(
                            "it did not give up ({} attempt(s), finished = {})",
                            log.attempts, log.finished
                        ),
                    },
                    line,
                );
            }
        }
        if let Some(c) = e.completed {
            let completed = log.finished && log.failures.is_empty();
            if completed != c {
                return fail(
                    format!("completed = {completed} (failures: {:?})", log.failures),
                    find_line(trace, &[name, "FAILED"]).or(line),
                );
            }
        }
        return None;
    }
    if let Some(remote) = &e.remote {
        let name = remote.get_ref();
        let log = world
            .remote_logs
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or_default();
        let line = find_last(trace, name);
        if let Some(n) = e.accepted {
            if log.accepted.len() != n {
                return fail(format!("{} accepted", log.accepted.len()), line);
            }
        }
        if let Some(n) = e.connections {
            if log.connections != n {
                return fail(format!("{} connections", log.connections), line);
            }
        }
        if let Some(n) = e.discarded {
            if log.discarded != n {
                return fail(format!("{} discarded", log.discarded), line);
            }
        }
        if let Some(want) = &e.contains {
            if !log.accepted.iter().any(|m| contains(&m.message, want)) {
                return fail(
                    format!(
                        "{} accepted message(s), none contains it",
                        log.accepted.len()
                    ),
                    line,
                );
            }
        }
        if let Some(unwanted) = &e.lacks {
            if let Some(i) = log
                .accepted
                .iter()
                .position(|m| contains(&m.message, unwanted))
            {
                return fail(format!("accepted message {} contains it", i + 1), line);
            }
        }
        if let Some(max) = e.longest_line {
            let longest = log
                .accepted
                .iter()
                .flat_map(|m| m.message.split(|&b| b == b'\n'))
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l).len())
                .max()
                .unwrap_or(0);
            if longest > max {
                return fail(format!("a line of {longest} octets"), line);
            }
        }
        if let Some(want) = &e.dkim {
            if !log.accepted.iter().any(|m| &m.dkim == want) {
                let seen: Vec<&str> = log.accepted.iter().map(|m| m.dkim.as_str()).collect();
                let line = find_last(trace, &format!("{name:<12} remote dkim=")).or(line);
                return fail(
                    format!("dkim verdicts of accepted messages: {seen:?}"),
                    line,
                );
            }
        }
        return None;
    }
    let text = trace.join("\n");
    if let Some(t) = &e.trace_contains {
        if !text.contains(t.as_str()) {
            return fail(
                "not in the trace".into(),
                Some(trace.len().saturating_sub(1)),
            );
        }
    }
    if let Some(t) = &e.trace_lacks {
        if let Some(i) = trace.iter().position(|l| l.contains(t.as_str())) {
            return fail(format!("found at trace line {}", i + 1), Some(i));
        }
    }
    None
}

fn contains(hay: &[u8], needle: &str) -> bool {
    memchr::memmem::find(hay, needle.as_bytes()).is_some()
}

fn message_matches(m: &StoredMessage, e: &Expect) -> bool {
    let Some(parsed) = MessageParser::default().parse(&m.bytes) else {
        return false;
    };
    if let Some(headers) = &e.header {
        for (name, want) in headers {
            // Decoded text when the header is text (Subject, encoded words decoded); the raw
            // value otherwise (addresses, Return-Path, dates).
            let got = parsed
                .header(name.as_str())
                .and_then(|h| h.as_text().map(str::to_string))
                .or_else(|| {
                    parsed
                        .header_raw(name.as_str())
                        .map(|r| r.trim().to_string())
                });
            if got.as_deref().map(str::trim) != Some(want.trim()) {
                return false;
            }
        }
    }
    if let Some(b) = &e.body_contains {
        if !contains(body_of(&m.bytes), b) {
            return false;
        }
    }
    if let Some(t) = &e.contains {
        if !contains(&m.bytes, t) {
            return false;
        }
    }
    true
}

/// The part after the header section.
pub fn body_of(bytes: &[u8]) -> &[u8] {
    match memchr::memmem::find(bytes, b"\r\n\r\n") {
        Some(p) => &bytes[p + 4..],
        None => &[],
    }
}

fn summarize(m: &StoredMessage) -> String {
    let subject = MessageParser::default()
        .parse(&m.bytes)
        .and_then(|p| p.subject().map(str::to_string))
        .unwrap_or_default();
    format!("{} ({} octets, Subject: {subject:?})", m.id, m.bytes.len())
}

fn find_line(trace: &[String], all: &[&str]) -> Option<usize> {
    trace.iter().position(|l| all.iter().all(|w| l.contains(w)))
}

fn find_last(trace: &[String], needle: &str) -> Option<usize> {
    trace.iter().rposition(|l| l.contains(needle))
}
