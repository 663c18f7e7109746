//! Crash safety of local delivery: the server is crashed at every millisecond of a busy
//! delivery window (file operations take 1 ms each, so crashes land between a write, its
//! fsync, the rename and the directory sync), restarted, and then:
//! - every message acknowledged with 250 is in every mailbox it was for;
//! - no stored message is partial (each ends with its own end marker);
//! - no temp file survives recovery, and nothing is stored twice.
//!
//! `fs_sync_probability` makes some un-fsynced file data durable anyway (a kernel flushing on
//! its own); directory entries still need the directory sync, as turmoil models it.

use std::collections::BTreeMap;
use std::path::Path;

use mailsim::check::read_mailbox;
use mailsim::scenario;
use mailsim::world;

const SENDERS: [&str; 3] = ["a", "b", "c"];
const MESSAGES: usize = 3;

fn scenario_text(crash_at_ms: Option<u64>) -> String {
    let mut s = String::from(
        r#"
[world]
seed = 99
fs_latency_ms = 1.0
fs_sync_probability = 0.3

[dns.zones."example.org"]
records = ["@ MX 10 mx.example.org.", "mx A 192.0.2.1"]

[server]
hostname = "mx.example.org"
domains = ["example.org"]
accounts = ["alice@example.org", "bob@example.org"]
[server.aliases]
"team@example.org" = ["alice@example.org", "bob@example.org"]
[server.listen]
smtp = "192.0.2.1:25"
"#,
    );
    for (n, who) in SENDERS.iter().enumerate() {
        s.push_str(&format!(
            "\n[[actor]]\nname = \"{who}\"\naddress = \"198.51.100.{}\"\ntarget = \"example.org\"\nstart_secs = 0.1\nreply_timeout_secs = 5\nsteps = [\n  {{ send = \"EHLO {who}.test\" }},\n",
            n + 10
        ));
        for m in 1..=MESSAGES {
            // Every other message goes to the alias: a commit into two mailboxes.
            let rcpt = if m % 2 == 0 { "team" } else { "alice" };
            s.push_str(&format!(
                "  {{ pipeline = [\"MAIL FROM:<{who}@{who}.test>\", \"RCPT TO:<{rcpt}@example.org>\", \"DATA\"] }},\n  {{ data = \"Subject: {who}{m}\\n\\nbody of {who}{m}\\nEND {who}{m}\\n\" }},\n"
            ));
        }
        s.push_str("  { send = \"QUIT\" },\n]\n");
    }
    if let Some(ms) = crash_at_ms {
        s.push_str(&format!(
            "\n[[fault]]\nkind = \"crash\"\nat_secs = {}\nrestart_after_secs = 0.5\n",
            ms as f64 / 1000.0
        ));
    }
    s.push_str("\n[[expect]]\ntrace_contains = \"boot 0\"\n");
    s
}

/// Subjects per mailbox that must be there: acknowledged messages and their recipients.
fn acknowledged(world: &world::WorldResult) -> BTreeMap<&'static str, Vec<String>> {
    let mut must: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let logs = world.logs.lock().unwrap();
    for who in SENDERS {
        let Some(log) = logs.get(who) else { continue };
        for (step, reply) in &log.data_replies {
            if !reply.starts_with("250") {
                continue;
            }
            // steps: 0 = EHLO, then (pipeline, data) pairs.
            let m = step / 2;
            let subject = format!("{who}{m}");
            must.entry("alice@example.org")
                .or_default()
                .push(subject.clone());
            if m % 2 == 0 {
                must.entry("bob@example.org").or_default().push(subject);
            }
        }
    }
    must
}

fn run(crash_at_ms: Option<u64>) -> (world::WorldResult, BTreeMap<&'static str, Vec<String>>) {
    let text = scenario_text(crash_at_ms);
    let loaded =
        scenario::parse(Path::new("crash.toml"), "crash".into(), text).expect("valid scenario");
    let result = world::run(&loaded, 99);
    let must = acknowledged(&result);
    (result, must)
}

#[test]
fn no_acknowledged_message_is_lost_and_none_is_partial_whatever_the_crash_instant() {
    let (calm, calm_acks) = run(None);
    let total: usize = calm_acks.values().map(Vec::len).sum();
    assert_eq!(
        total,
        SENDERS.len() * MESSAGES + SENDERS.len() * (MESSAGES / 2),
        "all acknowledged without a crash"
    );
    let end_ms = calm.sim_elapsed.as_millis() as u64;
    assert!(
        end_ms > 120,
        "the delivery window is long enough to sweep ({end_ms} ms)"
    );

    let (mut mid_commit, mut crashes_with_acks, mut crashes_before_any_ack) = (0, 0, 0);
    for crash_at in 100..=end_ms {
        let (world, must) = run(Some(crash_at));
        let trace = world.trace.to_text();
        assert!(
            trace.contains("fault  crash server"),
            "crash at {crash_at} ms happened"
        );
        assert!(
            trace.contains("boot 1"),
            "server restarted after the crash at {crash_at} ms"
        );
        // Was a commit in flight when the crash came: a message fully received, its 250 not
        // yet sent?
        let before_crash = trace.split("fault  crash server").next().unwrap_or("");
        let received = before_crash.matches("C: [message").count();
        let acked = before_crash.matches("S: 250 2.0.0 Ok: queued").count();
        if received > acked {
            mid_commit += 1;
        }
        if must.is_empty() {
            crashes_before_any_ack += 1;
        } else {
            crashes_with_acks += 1;
        }
        for mailbox in ["alice@example.org", "bob@example.org"] {
            let stored = read_mailbox(&world, mailbox).expect("mailbox readable");
            let mut subjects = Vec::new();
            for m in &stored {
                let text = String::from_utf8_lossy(&m.bytes);
                let subject = text
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .unwrap_or_else(|| {
                        panic!(
                            "crash at {crash_at} ms: {mailbox}/{} has no subject: {text:?}",
                            m.id
                        )
                    })
                    .to_string();
                assert!(
                    text.ends_with(&format!("END {subject}\r\n")),
                    "crash at {crash_at} ms: partial message {mailbox}/{}: {text:?}",
                    m.id
                );
                subjects.push(subject);
            }
            let mut dedup = subjects.clone();
            dedup.sort();
            dedup.dedup();
            assert_eq!(
                dedup.len(),
                subjects.len(),
                "crash at {crash_at} ms: duplicates in {mailbox}: {subjects:?}"
            );
            for want in must.get(mailbox).into_iter().flatten() {
                assert!(
                    subjects.contains(want),
                    "crash at {crash_at} ms: acknowledged {want} lost from {mailbox} (stored: {subjects:?})\n{trace}"
                );
            }
        }
    }
    // The sweep must actually cover the dangerous instants, or it proves nothing.
    assert!(
        mid_commit >= 5,
        "only {mid_commit} crashes landed while a commit was in flight"
    );
    assert!(
        crashes_with_acks > 0 && crashes_before_any_ack > 0,
        "the sweep spans the window"
    );
}
