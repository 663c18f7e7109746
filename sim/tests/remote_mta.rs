//! The scripted remote MTAs (the far end of outbound delivery), driven here by sender actors
//! so their behaviour is pinned before the outbound queue talks to them.

use std::path::Path;

use mailsim::{runner, scenario};

const BASE: &str = r#"
[world]
seed = 5
duration_secs = 86400

[server]
hostname = "mx.example.org"
domains = ["example.org"]
accounts = ["alice@example.org"]
relay_networks = ["192.0.2.0/24"]
[server.listen]
smtp = "192.0.2.1:25"
"#;

fn run(body: &str) -> runner::Outcome {
    let text = format!("{BASE}\n{body}");
    let loaded =
        scenario::parse(Path::new("remote.toml"), "remote".into(), text).expect("valid scenario");
    runner::run_loaded(&loaded, None)
}

fn assert_passes(body: &str) {
    let o = run(body);
    assert!(
        o.passed(),
        "{}\n{}\n{}",
        o.summary_line(),
        o.failure_report(),
        o.trace
    );
}

fn assert_fails(body: &str, why: &str) {
    let o = run(body);
    assert!(!o.passed(), "should fail: {why}");
    assert!(o.failure_report().contains(why), "{}", o.failure_report());
}

const GREYLIST: &str = r#"
[[remote]]
name = "mx.other.net"
address = "203.0.113.10"
behaviour = { greylist_secs = 300 }

[[actor]]
name = "client"
address = "198.51.100.7"
target = "203.0.113.10:25"
steps = [
  { send = "EHLO client.test", expect = "250 PIPELINING" },
  { send = "MAIL FROM:<a@client.test>", expect = 250 },
  { send = "RCPT TO:<bob@other.net>", expect = "451 4.7.1" },
  { send = "RSET", expect = 250 },
  { wait_secs = 400 },
  { send = "MAIL FROM:<a@client.test>", expect = 250 },
  { send = "RCPT TO:<bob@other.net>", expect = 250 },
  { send = "DATA", expect = 354 },
  { data = "Subject: grey\n\nfinally\n", expect = "250 2.0.0" },
  { send = "QUIT", expect = 221 },
]
"#;

#[test]
fn greylisting_defers_a_new_triplet_then_accepts() {
    assert_passes(&format!(
        "{GREYLIST}\n[[expect]]\nremote = \"mx.other.net\"\naccepted = 1\nconnections = 1\n"
    ));
    assert_fails(
        &format!("{GREYLIST}\n[[expect]]\nremote = \"mx.other.net\"\naccepted = 2\n"),
        "1 accepted",
    );
}

#[test]
fn down_for_an_hour_then_up() {
    assert_passes(
        r#"
[[remote]]
name = "mx.other.net"
address = "203.0.113.10"
behaviour = { mode = "refuse" }
change = [ { from_secs = 3600, mode = "accept" } ]

[[actor]]
name = "early"
address = "198.51.100.7"
target = "203.0.113.10:25"
start_secs = 10

[[actor]]
name = "late"
address = "198.51.100.8"
target = "203.0.113.10:25"
start_secs = 4000
steps = [
  { send = "EHLO late.test", expect = 250 },
  { pipeline = ["MAIL FROM:<l@late.test>", "RCPT TO:<x@other.net>", "DATA"], expect = [250, 250, 354] },
  { data = "Subject: late\n\nok\n", expect = 250 },
  { send = "QUIT", expect = 221 },
]

[[expect]]
actor = "early"
completed = false          # connection refused while the remote is down

[[expect]]
remote = "mx.other.net"
accepted = 1
connections = 1

[[expect]]
trace_contains = "connect 203.0.113.10:25: "
"#,
    );
}

#[test]
fn per_recipient_replies_and_a_drop_mid_data() {
    assert_passes(
        r#"
[[remote]]
name = "mx.other.net"
address = "203.0.113.10"
behaviour = { extensions = ["SIZE 1000"], rcpt_for = { "bad@other.net" = "550 5.1.1 no such user", "slow@other.net" = "451 4.2.0 try later" }, end_of_data = "drop" }

[[actor]]
name = "client"
address = "198.51.100.7"
target = "203.0.113.10:25"
steps = [
  { send = "EHLO client.test", expect = "250 SIZE 1000" },
  { pipeline = ["MAIL FROM:<a@client.test>", "RCPT TO:<ok@other.net>", "RCPT TO:<bad@other.net>", "RCPT TO:<slow@other.net>", "DATA"], expect = [250, "250 2.1.5", "550 5.1.1", "451 4.2.0", 354] },
  { data = "Subject: s\n\nbody\n" },
]

[[expect]]
actor = "client"
completed = false          # the remote hangs up instead of answering the final dot

[[expect]]
remote = "mx.other.net"
accepted = 0

[[expect]]
trace_contains = "drops the connection"
"#,
    );
}

#[test]
fn black_hole_never_answers() {
    assert_passes(
        r#"
[[remote]]
name = "mx.other.net"
address = "203.0.113.10"
behaviour = { mode = "blackhole" }

[[actor]]
name = "client"
address = "198.51.100.7"
target = "203.0.113.10:25"
reply_timeout_secs = 30

[[expect]]
actor = "client"
completed = false

[[expect]]
trace_contains = "FAILED greeting: no reply before the reply timeout"
"#,
    );
}

#[test]
fn bad_remote_reply_is_a_scenario_error() {
    let text = format!("{BASE}\n[[remote]]\nname = \"r\"\naddress = \"203.0.113.10\"\nbehaviour = {{ rcpt = \"OK\" }}\n\n[[expect]]\nremote = \"r\"\naccepted = 0\n");
    let err = scenario::parse(Path::new("bad.toml"), "bad".into(), text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("remote[0]") && err.contains("is not a reply"),
        "{err}"
    );
}

#[test]
fn relayhost_sends_everything_to_one_host_without_mx_lookups() {
    let o = run(r#"
[server.queue]
relayhost = "203.0.113.99:2526"

[[remote]]
name = "smarthost"
address = "203.0.113.99"
port = 2526

[[actor]]
name = "client"
address = "192.0.2.77"
target = "192.0.2.1:25"
steps = [
  { send = "EHLO client.test", expect = 250 },
  { pipeline = ["MAIL FROM:<alice@example.org>", "RCPT TO:<x@nowhere.test>", "DATA"], expect = [250, 250, 354] },
  { data = "Subject: via relay\n\nhi\n", expect = 250 },
  { send = "QUIT", expect = 221 },
]

[[expect]]
remote = "smarthost"
accepted = 1

[[expect]]
trace_lacks = "nowhere.test MX"
"#);
    assert!(o.passed(), "{}", o.failure_report());
}
