//! `mailsim run --junit FILE` (issue #14 item 2): the run as JUnit XML (quick-junit, the
//! serializer cargo-nextest writes its own reports with), which every CI shows as a test
//! list with failures inline.
//!
//! One test case per scenario, or per (scenario, seed) pair in a sweep, named by the
//! scenario (`faults/crash-campaign-50`) or by `seed-N` under the scenario as its class,
//! so a CI groups a sweep's seeds under their scenario. A failure's message is the first
//! violated expectation or invariant; its body is the report the terminal shows — every
//! failure, the trace excerpt and the replay command. A file that does not load is an
//! `<error>`, not a `<failure>`: the scenario is broken, not the server.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{Outcome, PassedRun, Sweep};

/// The report of a plain run: one case per outcome.
pub fn run_report(outcomes: &[Outcome]) -> Report {
    let mut suite = TestSuite::new("mailsim run");
    for o in outcomes {
        let (class, name) = split_name(&o.name);
        suite.add_test_case(case(o, name, class));
    }
    finish(suite)
}

/// The report of a sweep: one case per pair that ran (passed or failed) and one per file
/// that did not load. A stopped sweep lists only what ran, and of its failures only the
/// lowest (as the terminal report does).
pub fn sweep_report(sweep: &Sweep) -> Report {
    let mut suite = TestSuite::new("mailsim run --seeds");
    let mut cases: Vec<(usize, u64, TestCase)> = Vec::new();
    for &PassedRun {
        scenario,
        seed,
        wall,
    } in &sweep.passed_runs
    {
        let name = &sweep.per_scenario[scenario].0;
        let mut c = TestCase::new(format!("seed-{seed}"), TestCaseStatus::success());
        c.set_classname(name.clone()).set_time(wall);
        cases.push((scenario, seed, c));
    }
    for o in &sweep.failures {
        let c = case(o, &format!("seed-{}", o.seed), &o.name);
        let scenario = sweep.per_scenario.iter().position(|(n, _, _)| *n == o.name);
        cases.push((scenario.unwrap_or(usize::MAX), o.seed, c));
    }
    // Scenario by input order, then seed, as the terminal lists them.
    cases.sort_by_key(|(scenario, seed, _)| (*scenario, *seed));
    for (path, name, e) in &sweep.load_errors {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status
            .set_message(e.to_string())
            .set_type("scenario does not load")
            .set_description(format!("{}: {e}", path.display()));
        let mut c = TestCase::new(name.clone(), status);
        c.set_classname(name.clone());
        suite.add_test_case(c);
    }
    suite.add_test_cases(cases.into_iter().map(|(_, _, c)| c));
    finish(suite)
}

fn finish(suite: TestSuite) -> Report {
    let mut report = Report::new("mailsim");
    report.add_test_suite(suite);
    report
}

/// `inbound/local-delivery` → class `inbound`, name `local-delivery`.
fn split_name(name: &str) -> (&str, &str) {
    name.rsplit_once('/').unwrap_or(("scenarios", name))
}

fn case(o: &Outcome, name: &str, class: &str) -> TestCase {
    let status = if o.passed() {
        TestCaseStatus::success()
    } else {
        let (kind, message, ty) = match (&o.load_error, o.failures.first()) {
            (Some(e), _) => (
                NonSuccessKind::Error,
                e.to_string(),
                "scenario does not load".to_string(),
            ),
            (None, Some(f)) => (
                NonSuccessKind::Failure,
                format!("{} — found: {}", f.expectation, f.found),
                crate::shrink::kind(f),
            ),
            // Not passed has a reason; should a new one appear, it still reads as a failure.
            (None, None) => (
                NonSuccessKind::Failure,
                "failed".to_string(),
                "failure".to_string(),
            ),
        };
        let mut status = TestCaseStatus::non_success(kind);
        status
            .set_message(message)
            .set_type(ty)
            .set_description(o.failure_report());
        status
    };
    let mut c = TestCase::new(name.to_string(), status);
    c.set_classname(class.to_string()).set_time(o.wall);
    c
}
