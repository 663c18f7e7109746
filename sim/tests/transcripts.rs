//! Snapshots (insta, under `snapshots/`) of the traces of key scenarios: a change in what the
//! server says on the wire, what it stores or when, shows up as a reviewable diff.
//! Update with `INSTA_UPDATE=always cargo test --test transcripts` and review the diff.

use std::path::PathBuf;

use mailsim::runner;

fn trace_of(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/inbound");
    let outcome = runner::run_file(
        &root.join(format!("{name}.toml")),
        &format!("inbound/{name}"),
        None,
    );
    assert!(outcome.passed(), "{}", outcome.failure_report());
    outcome.trace
}

macro_rules! snapshot {
    ($test:ident, $scenario:literal) => {
        #[test]
        fn $test() {
            insta::with_settings!({
                snapshot_path => "../../snapshots",
                prepend_module_to_snapshot => false,
                omit_expression => true,
            }, {
                insta::assert_snapshot!($scenario, trace_of($scenario));
            });
        }
    };
}

snapshot!(local_delivery, "local-delivery");
snapshot!(pipelined_transaction, "pipelined-transaction");
snapshot!(smuggling_attempt, "smuggling-attempt");
snapshot!(bad_sequence, "bad-sequence");
snapshot!(crash_and_restart, "crash-and-restart");

/// FNV-1a 64 of a trace: a stable digest (std's hasher is keyed per process).
fn digest(trace: &str) -> u64 {
    trace.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Digests of whole traces across the scenario kinds and seeds of a sweep (issue #12 item
/// 5): a trace depends only on (scenario, seed), so these lines change only when behaviour
/// or timing does — and then the diff shows in review, even where no expectation noticed.
#[test]
fn trace_digests() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let cases: &[(&str, &[u64])] = &[
        ("inbound/alias-delivery", &[1]),
        ("outbound/remote-delivery", &[1, 2]),
        ("outbound/mx-failover-refused", &[1, 2]),
        ("defence/dkim-pass-rsa-ed25519", &[1]),
        ("defence/greylist-retry-accepted", &[1]),
        ("faults/crash-campaign-50", &[1, 2, 3, 4, 5]),
    ];
    let mut lines = Vec::new();
    for (name, seeds) in cases {
        for &seed in *seeds {
            let o = runner::run_file(&root.join(format!("{name}.toml")), name, Some(seed));
            assert!(o.passed(), "{name} seed {seed}:\n{}", o.failure_report());
            lines.push(format!(
                "{name} seed={seed} lines={} fnv1a={:016x}",
                o.trace.lines().count(),
                digest(&o.trace)
            ));
        }
    }
    insta::with_settings!({
        snapshot_path => "../../snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!("trace-digests", lines.join("\n"));
    });
}
