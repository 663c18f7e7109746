//! Tests of the real Env: files in a temp dir, loopback sockets, the clock, the trace.

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A fresh directory under the system temp dir, removed on drop.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new(tag: &str) -> TempRoot {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("mailsim-real-{tag}-{}-{nanos}", std::process::id()));
        TempRoot(dir)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An env whose resolver never leaves loopback (port 9 on 127.0.0.1: discard, closed).
fn env_in(root: &TempRoot) -> RealEnv {
    let opts = RealOptions {
        nameservers: vec!["127.0.0.1:9".parse().unwrap()],
        dns_timeout: Some(Duration::from_millis(200)),
        dns_attempts: Some(0),
        ..RealOptions::default()
    };
    RealEnv::new(root.0.clone(), opts).unwrap()
}

#[test]
fn new_creates_the_root_without_a_runtime() {
    let root = TempRoot::new("new");
    let env = env_in(&root);
    assert!(root.0.is_dir());
    assert_eq!(env.data_root(), root.0.as_path());
    // The system configuration (or its fallback) also builds outside a runtime.
    RealEnv::new(root.0.join("sys"), RealOptions::default()).unwrap();
}

#[tokio::test]
async fn write_many_reports_each_file_and_refuses_escapes() {
    let root = TempRoot::new("many");
    let env = RealEnv::new(root.0.clone(), RealOptions::default()).unwrap();
    env.create_dir_all(Path::new("d")).await.unwrap();
    let files: Vec<(PathBuf, &[u8])> = vec![
        (PathBuf::from("d/a"), b"alpha"),
        (PathBuf::from("../escape"), b"nope"),
        (PathBuf::from("missing/b"), b"no such dir"),
        (PathBuf::from("d/c"), b"gamma"),
    ];
    let results = env.write_many(&files).await;
    assert_eq!(results.len(), 4);
    assert!(results[0].is_ok() && results[3].is_ok(), "{results:?}");
    assert_eq!(
        results[1].as_ref().unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    assert_eq!(
        results[2].as_ref().unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(env.read(Path::new("d/a")).await.unwrap(), b"alpha");
    assert_eq!(env.read(Path::new("d/c")).await.unwrap(), b"gamma");
    assert!(!root.0.parent().unwrap().join("escape").exists());
    env.sync_many(&[PathBuf::from("d/a")], &[PathBuf::from("d")])
        .await
        .unwrap();
    assert!(env.sync_many(&[PathBuf::from("../x")], &[]).await.is_err());
}

#[tokio::test]
async fn file_primitives_round_trip() {
    let root = TempRoot::new("files");
    let env = env_in(&root);
    let p = Path::new;

    env.create_dir_all(p("queue/new")).await.unwrap();
    env.write(p("queue/new/b"), b"hello").await.unwrap();
    env.append(p("queue/new/b"), b", world").await.unwrap();
    env.append(p("queue/new/a"), b"created").await.unwrap();
    env.sync_file(p("queue/new/b")).await.unwrap();
    env.sync_dir(p("queue/new")).await.unwrap();
    assert_eq!(env.read(p("queue/new/b")).await.unwrap(), b"hello, world");
    assert_eq!(env.read(p("queue/new/a")).await.unwrap(), b"created");

    // write truncates.
    env.write(p("queue/new/b"), b"short").await.unwrap();
    assert_eq!(env.read(p("queue/new/b")).await.unwrap(), b"short");

    for name in ["c", "z", "m"] {
        env.write(&Path::new("queue/new").join(name), b"")
            .await
            .unwrap();
    }
    assert_eq!(
        env.list_dir(p("queue/new")).await.unwrap(),
        ["a", "b", "c", "m", "z"]
    );

    env.create_dir_all(p("queue/cur")).await.unwrap();
    env.rename(p("queue/new/b"), p("queue/cur/b"))
        .await
        .unwrap();
    env.sync_dir(p("queue")).await.unwrap();
    assert_eq!(env.read(p("queue/cur/b")).await.unwrap(), b"short");
    let gone = env.read(p("queue/new/b")).await.unwrap_err();
    assert_eq!(gone.kind(), io::ErrorKind::NotFound);
    assert!(gone.to_string().contains("queue/new/b"), "{gone}");

    env.remove_file(p("queue/cur/b")).await.unwrap();
    assert!(env.list_dir(p("queue/cur")).await.unwrap().is_empty());
    assert_eq!(
        env.remove_file(p("queue/cur/b")).await.unwrap_err().kind(),
        io::ErrorKind::NotFound
    );

    // The root itself is reachable as "" and ".".
    assert_eq!(env.list_dir(p("")).await.unwrap(), ["queue"]);
    assert_eq!(env.list_dir(p(".")).await.unwrap(), ["queue"]);
    env.sync_dir(p("")).await.unwrap();

    // Everything landed under the root.
    assert!(root.0.join("queue/new/a").is_file());
}

/// The same test body as the simulated and the in-memory Env (`env/conformance.rs`).
#[tokio::test]
async fn conformance() {
    let root = TempRoot::new("conformance");
    crate::env::conformance::run(&env_in(&root)).await;
}

#[tokio::test]
async fn paths_that_leave_the_root_are_refused() {
    // The env's root is one level down in a fresh directory, so "next to the root" is a
    // place only this test could have written to (not the shared temp dir, where another
    // program's `/tmp/x` would fail the test).
    let outer = TempRoot::new("escape");
    let root = TempRoot(outer.0.join("root"));
    let env = env_in(&root);
    let bad = ["../x", "/etc/passwd", "a/../../x", "a/..", ".."];
    for b in bad {
        let b = Path::new(b);
        let kind = |r: io::Result<()>| r.unwrap_err().kind();
        assert_eq!(
            env.read(b).await.unwrap_err().kind(),
            io::ErrorKind::InvalidInput,
            "{}",
            b.display()
        );
        assert_eq!(kind(env.write(b, b"x").await), io::ErrorKind::InvalidInput);
        assert_eq!(kind(env.append(b, b"x").await), io::ErrorKind::InvalidInput);
        assert_eq!(kind(env.sync_file(b).await), io::ErrorKind::InvalidInput);
        assert_eq!(kind(env.sync_dir(b).await), io::ErrorKind::InvalidInput);
        assert_eq!(kind(env.remove_file(b).await), io::ErrorKind::InvalidInput);
        assert_eq!(
            kind(env.create_dir_all(b).await),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(env.rename(Path::new("ok"), b).await),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(env.rename(b, Path::new("ok")).await),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            env.list_dir(b).await.unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
    // Nothing was created next to the root.
    assert!(!outer.0.join("x").exists());
}

#[tokio::test]
async fn listen_connect_echo() {
    let root = TempRoot::new("net");
    let env = env_in(&root);
    let mut listener = env.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert_ne!(addr.port(), 0);

    env.spawn(async move {
        let (mut s, _peer) = listener.accept().await.unwrap();
        assert!(s.nodelay().unwrap());
        let mut buf = [0u8; 64];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).await.unwrap();
        }
    });

    let mut c = env.connect(addr).await.unwrap();
    assert!(c.nodelay().unwrap());
    c.write_all(b"EHLO example.org\r\n").await.unwrap();
    let mut back = [0u8; 18];
    c.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"EHLO example.org\r\n");
}

#[tokio::test]
async fn clock_and_sleep() {
    let root = TempRoot::new("clock");
    let env = env_in(&root);
    let sys = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let now = env.now();
    assert!(
        now.0.abs_diff(sys) < Duration::from_secs(1),
        "{now:?} vs {sys:?}"
    );

    // A deadline in the past returns at once (no timer involved at all).
    let start = std::time::Instant::now();
    env.sleep_until(Timestamp::from_secs(1)).await;
    env.sleep_until(env.now()).await;
    assert!(start.elapsed() < Duration::from_millis(50));

    // A near deadline is honoured on the wall clock.
    let deadline = env.now().plus(Duration::from_millis(30));
    env.sleep_until(deadline).await;
    assert!(env.now() >= deadline);
}

#[test]
fn random_numbers_differ() {
    let root = TempRoot::new("rand");
    let env = env_in(&root);
    let draws: std::collections::BTreeSet<u64> = (0..16).map(|_| env.random_u64()).collect();
    assert_eq!(draws.len(), 16);
}

#[test]
fn utc_formatting() {
    assert_eq!(
        crate::mail::date::rfc3339(Timestamp::default()),
        "1970-01-01T00:00:00.000000Z"
    );
    // 2000-02-29 (a leap day in a century leap year) 12:34:56.789012.
    let t = Timestamp(Duration::new(951_827_696, 789_012_345));
    assert_eq!(crate::mail::date::rfc3339(t), "2000-02-29T12:34:56.789012Z");
    let t = Timestamp::from_secs(1_767_225_599); // last second of 2025
    assert_eq!(crate::mail::date::rfc3339(t), "2025-12-31T23:59:59.000000Z");
}

#[test]
fn trace_off_is_silent_and_on_does_not_panic() {
    let root = TempRoot::new("trace");
    let quiet = env_in(&root);
    quiet.trace("smtp", format_args!("never formatted {}", 1));
    let loud = RealEnv::new(
        root.0.clone(),
        RealOptions {
            verbose: true,
            nameservers: vec!["127.0.0.1:9".parse().unwrap()],
            ..RealOptions::default()
        },
    )
    .unwrap();
    loud.trace("test", format_args!("verbose trace line {}", 42));
}

/// CPU work runs off the async worker (on the blocking pool), and its result comes back.
#[tokio::test]
async fn compute_runs_on_the_blocking_pool() {
    let root = TempRoot::new("compute");
    let env = env_in(&root);
    let here = std::thread::current().id();
    let (there, sum) = env
        .compute(|| (std::thread::current().id(), (1..=10u32).sum::<u32>()))
        .await;
    assert_ne!(here, there);
    assert_eq!(sum, 55);
}
