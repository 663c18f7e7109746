use std::sync::{Arc, Mutex};

use futures::future::join_all;
use tokio::sync::oneshot;

use super::*;
use crate::durable::memenv::MemEnv;

/// A store that does what each job says and notes every settlement.
#[derive(Clone, Default)]
struct Recorder {
    /// (label, outcome ok?, batch size), in settlement order.
    settled: Arc<Mutex<Vec<(String, bool, usize)>>>,
}

struct TestJob {
    label: String,
    changes: Changes,
    done: oneshot::Sender<io::Result<()>>,
}

impl Store<MemEnv> for Recorder {
    type Job = TestJob;
    type Ticket = (String, oneshot::Sender<io::Result<()>>);

    fn plan(&mut self, _env: &MemEnv, batch: Vec<TestJob>) -> Vec<(Self::Ticket, Changes)> {
        batch
            .into_iter()
            .map(|j| ((j.label, j.done), j.changes))
            .collect()
    }

    fn settle(&mut self, _env: &MemEnv, t: Self::Ticket, outcome: io::Result<()>, batch: usize) {
        self.settled
            .lock()
            .unwrap()
            .push((t.0, outcome.is_ok(), batch));
        let _ = t.1.send(outcome);
    }
}

async fn setup(mode: CommitMode) -> (MemEnv, Committer<TestJob>, Recorder) {
    let env = MemEnv::new();
    for d in ["d", "e"] {
        crate::env::create_dir_durable(&env, Path::new(d))
            .await
            .unwrap();
    }
    let rec = Recorder::default();
    let c = Committer::spawn(&env, mode, rec.clone());
    (env, c, rec)
}

/// Submits every job at once (so they can share a batch) and waits for all answers.
async fn run_jobs(c: &Committer<TestJob>, jobs: Vec<(&str, Changes)>) -> Vec<io::Result<()>> {
    let waits: Vec<_> = jobs
        .into_iter()
        .map(|(label, changes)| {
            let (done, wait) = oneshot::channel();
            c.submit(TestJob {
                label: label.to_string(),
                changes,
                done,
            })
            .unwrap();
            wait
        })
        .collect();
    join_all(waits.into_iter().map(|w| async { w.await.unwrap() })).await
}

fn create(path: &str, data: &str) -> Changes {
    let mut c = Changes::new();
    c.create(PathBuf::from(path), data.as_bytes().to_vec())
        .unwrap();
    c
}

fn append(path: &str, data: &str) -> Changes {
    let mut c = Changes::new();
    c.append(PathBuf::from(path), data.as_bytes().to_vec());
    c
}

fn remove(path: &str) -> Changes {
    let mut c = Changes::new();
    c.remove(PathBuf::from(path));
    c
}

/// The calls of the env since `from`, without the reads and listings of the test itself.
fn calls_since(env: &MemEnv, from: usize) -> Vec<String> {
    env.calls()[from..].to_vec()
}

/// What survives a crash right now: (name, contents).
fn durable(env: &MemEnv) -> Vec<(String, String)> {
    env.image()
        .names_for_test()
        .into_iter()
        .map(|(p, d)| (p, String::from_utf8_lossy(&d).into_owned()))
        .collect()
}

#[tokio::test]
async fn one_batch_one_write_many_and_two_flushes() {
    let (env, c, rec) = setup(CommitMode::Group).await;
    // An existing file to append to.
    run_jobs(&c, vec![("seed", create("d/log", "L"))]).await;
    let from = env.calls().len();
    let mut jobs = Vec::new();
    let names: Vec<String> = (0..32).map(|i| format!("d/m{i:02}")).collect();
    for n in &names {
        jobs.push(("new", create(n, n)));
    }
    jobs.push(("rec1", append("d/log", "a")));
    jobs.push(("rec2", append("d/log", "b")));
    jobs.push(("new-e", create("e/x", "x")));
    jobs.push(("rm", remove("d/log-old")));
    let results = run_jobs(&c, jobs).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let calls = calls_since(&env, from);
    let count = |prefix: &str| calls.iter().filter(|c| c.starts_with(prefix)).count();
    assert_eq!(count("write_many"), 1, "{calls:#?}");
    assert!(calls.contains(&"write_many 33".to_string()));
    // The two records to one file are one append.
    assert_eq!(count("append "), 1, "{calls:#?}");
    assert_eq!(count("sync_many"), 2, "{calls:#?}");
    // 33 temp files and the log in the first flush, the two directories in the second.
    assert!(calls.contains(&"sync_many 34 0".to_string()), "{calls:#?}");
    assert!(calls.contains(&"sync_many 0 2".to_string()), "{calls:#?}");
    // Every job was in one batch; the appends were answered first (after the data flush).
    let settled = rec.settled.lock().unwrap().clone();
    assert_eq!(settled.len(), 1 + 36);
    assert!(settled[1..].iter().all(|(_, ok, n)| *ok && *n == 36));
    assert_eq!(settled[1].0, "rec1");
    assert_eq!(settled[2].0, "rec2");

    // Durable, under the final names, appends in arrival order; no temp file anywhere.
    let image = durable(&env);
    assert!(image.contains(&("d/log".into(), "Lab".into())), "{image:?}");
    assert!(image.contains(&("e/x".into(), "x".into())));
    for n in &names {
        assert!(image.contains(&(n.clone(), n.clone())), "{n}");
    }
    assert!(image.iter().all(|(p, _)| !p.contains(TMP_PREFIX)));
}

#[tokio::test]
async fn single_mode_commits_one_job_at_a_time() {
    let (env, c, rec) = setup(CommitMode::Single).await;
    let from = env.calls().len();
    let results = run_jobs(
        &c,
        (0..4)
            .map(|i| ("new", create(&format!("d/s{i}"), "s")))
            .collect(),
    )
    .await;
    assert!(results.iter().all(Result::is_ok));
    let calls = calls_since(&env, from);
    assert_eq!(
        calls.iter().filter(|c| *c == "write_many 1").count(),
        4,
        "{calls:#?}"
    );
    assert_eq!(calls.iter().filter(|c| *c == "sync_many 0 1").count(), 4);
    assert!(rec.settled.lock().unwrap().iter().all(|s| s.2 == 1));
}

#[tokio::test]
async fn a_failed_data_flush_fails_the_whole_batch() {
    let (env, c, _rec) = setup(CommitMode::Group).await;
    run_jobs(&c, vec![("seed", create("d/log", "L"))]).await;
    env.set_failing("sync_file", true);
    let results = run_jobs(
        &c,
        vec![
            ("a", create("d/a", "a")),
            ("b", create("e/b", "b")),
            ("rec", append("d/log", "r")),
        ],
    )
    .await;
    for r in &results {
        let e = r.as_ref().unwrap_err();
        assert!(e.to_string().contains("data flush failed"), "{e}");
    }
    // Nothing was renamed into place and the temp files are gone.
    for dir in ["d", "e"] {
        let names = env.list_dir(Path::new(dir)).await.unwrap();
        assert!(names.iter().all(|n| n == "log"), "{names:?}");
    }
    // The committer keeps working once the disk does.
    env.set_failing("sync_file", false);
    let results = run_jobs(&c, vec![("a", create("d/a", "a"))]).await;
    assert!(results[0].is_ok());
    assert!(durable(&env).contains(&("d/a".into(), "a".into())));
}

#[tokio::test]
async fn a_failed_directory_flush_fails_every_job_that_needed_it() {
    let (env, c, _rec) = setup(CommitMode::Group).await;
    run_jobs(
        &c,
        vec![
            ("seed", create("d/log", "L")),
            ("old", create("d/old", "o")),
        ],
    )
    .await;
    env.set_failing("sync_dir", true);
    let results = run_jobs(
        &c,
        vec![
            ("a", create("d/a", "a")),
            ("rec", append("d/log", "r")),
            ("rm", remove("d/old")),
        ],
    )
    .await;
    let e = results[0].as_ref().unwrap_err();
    assert!(e.to_string().contains("directory flush failed"), "{e}");
    // The record was durable after the data flush and is acknowledged.
    assert!(results[1].is_ok(), "{:?}", results[1]);
    assert!(results[2].is_err());
    // The new file was taken back, so it is not used behind its caller's back.
    let names = env.list_dir(Path::new("d")).await.unwrap();
    assert_eq!(names, vec!["log"]);
    env.set_failing("sync_dir", false);
    // The removal is retried and succeeds (idempotent: the file is already unlinked).
    let results = run_jobs(&c, vec![("rm", remove("d/old"))]).await;
    assert!(results[0].is_ok());
    assert_eq!(durable(&env), vec![("d/log".into(), "Lr".into())]);
}

#[tokio::test]
async fn a_job_whose_own_write_fails_fails_alone() {
    let (env, c, _rec) = setup(CommitMode::Group).await;
    let mut two = create("d/both1", "1");
    two.create(PathBuf::from("missing/both2"), b"2".to_vec())
        .unwrap();
    let results = run_jobs(
        &c,
        vec![
            ("ok", create("d/ok", "ok")),
            ("both", two),
            ("ok2", create("e/ok2", "ok2")),
        ],
    )
    .await;
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert!(results[2].is_ok());
    // Neither half of the failed job is visible, not even the one whose write worked.
    assert_eq!(env.list_dir(Path::new("d")).await.unwrap(), vec!["ok"]);
    assert_eq!(
        durable(&env),
        vec![("d/ok".into(), "ok".into()), ("e/ok2".into(), "ok2".into())]
    );
}

#[tokio::test]
async fn a_path_without_a_file_name_is_refused() {
    let mut c = Changes::new();
    assert_eq!(
        c.create(PathBuf::from(""), vec![]).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        temp_path(Path::new("queue/123")),
        Some(PathBuf::from("queue/.tmp-123"))
    );
    assert!(is_temp(".tmp-123") && !is_temp("123"));
}

#[tokio::test]
async fn a_stopped_committer_says_so() {
    let env = MemEnv::new();
    let (jobs, rx) = mpsc::unbounded_channel::<TestJob>();
    drop(rx);
    let c = Committer { jobs };
    let (done, _wait) = oneshot::channel();
    let job = TestJob {
        label: "x".into(),
        changes: Changes::new(),
        done,
    };
    assert_eq!(c.submit(job).unwrap_err(), Stopped);
    drop(env);
}

#[tokio::test]
async fn a_spliced_create_copies_its_source_after_the_head_in_plan_order() {
    let (env, c, _rec) = setup(CommitMode::Group).await;
    env.write(Path::new("e/spool"), b" world").await.unwrap();
    let mut spliced = Changes::new();
    spliced
        .create_spliced("d/s".into(), b"hello".to_vec(), "e/spool".into())
        .unwrap();
    let results = run_jobs(
        &c,
        vec![
            ("a", create("d/a", "A")),
            ("s", spliced),
            ("b", create("d/b", "B")),
        ],
    )
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let image = durable(&env);
    assert!(
        image.contains(&("d/s".into(), "hello world".into())),
        "{image:?}"
    );
    assert!(image.contains(&("d/a".into(), "A".into())), "{image:?}");
    assert!(image.contains(&("d/b".into(), "B".into())), "{image:?}");
    // The source stays.
    assert_eq!(env.read(Path::new("e/spool")).await.unwrap(), b" world");

    // A missing source fails that job alone, leaving no temp file.
    let mut broken = Changes::new();
    broken
        .create_spliced("d/t".into(), b"x".to_vec(), "e/missing".into())
        .unwrap();
    let results = run_jobs(&c, vec![("t", broken), ("c", create("d/c", "C"))]).await;
    assert!(results[0].is_err());
    assert!(results[1].is_ok());
    let image = durable(&env);
    assert!(image
        .iter()
        .all(|(p, _)| p != "d/t" && !p.contains(TMP_PREFIX)));
}
