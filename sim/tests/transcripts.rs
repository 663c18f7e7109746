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
