//! The Env conformance test: one test body that every world must pass, so the simulator's
//! filesystem and the test doubles promise exactly what the real one does.
//!
//! A store proven crash-safe in the simulator is only proven for production if the simulated
//! Env behaves like the real one wherever the store depends on it: which paths are refused,
//! that `rename` replaces, that `write` truncates, what a missing file's error kind is, that
//! listings are sorted. [`run`] checks each of these with asserts (it is a test body, compiled
//! into the crate so the `mailsim` crate can run it inside a turmoil host). It is run against
//! the real Env in a temporary directory and the in-memory test Env (unit tests in
//! `env/real.rs` and `env/fake.rs`), and against the simulated Env (`sim/tests/env_conformance.rs`).
//!
//! It works under `conformance/` in the Env's data root, which must not exist yet.

use std::io;
use std::path::{Path, PathBuf};

use super::Env;

/// The directory the checks work in.
pub const BASE: &str = "conformance";

/// Runs every check against `env`; panics (assert) at the first disagreement.
pub async fn run<E: Env>(env: &E) {
    let base = Path::new(BASE);
    env.create_dir_all(base)
        .await
        .unwrap_or_else(|e| panic!("create_dir_all {BASE}: {e}"));
    refused_paths(env).await;
    dot_is_the_root(env, base).await;
    write_truncates(env, &sub(env, base, "write").await).await;
    write_many_reports_each_file(env, &sub(env, base, "many").await).await;
    append_creates(env, &sub(env, base, "append").await).await;
    write_spliced_copies_the_source(env, &sub(env, base, "spliced").await).await;
    rename_replaces(env, &sub(env, base, "rename").await).await;
    missing_is_not_found(env, &sub(env, base, "missing").await).await;
    syncs_succeed_on_what_exists(env, &sub(env, base, "sync").await).await;
    create_dir_all_is_idempotent(env, &sub(env, base, "dirs").await).await;
    list_dir_is_sorted_and_exact(env, &sub(env, base, "list").await).await;
}

async fn sub<E: Env>(env: &E, base: &Path, name: &str) -> PathBuf {
    let dir = base.join(name);
    env.create_dir_all(&dir)
        .await
        .unwrap_or_else(|e| panic!("create_dir_all {}: {e}", dir.display()));
    dir
}

fn kind<T: std::fmt::Debug>(r: io::Result<T>) -> io::ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.kind(),
    }
}

/// Absolute, `..` and NUL paths are `InvalidInput` for every operation, and nothing is
/// created by trying.
async fn refused_paths<E: Env>(env: &E) {
    let before = env.list_dir(Path::new(".")).await.expect("list the root");
    let bad: [&Path; 7] = [
        Path::new("/"),
        Path::new("/etc/passwd"),
        Path::new(".."),
        Path::new("../x"),
        Path::new("conformance/../../x"),
        Path::new("conformance/.."),
        Path::new("conformance/a\0b"),
    ];
    let ok = Path::new("conformance/refused-ok");
    env.write(ok, b"x").await.expect("write a plain name");
    for b in bad {
        let invalid = io::ErrorKind::InvalidInput;
        assert_eq!(kind(env.read(b).await), invalid, "read {b:?}");
        assert_eq!(kind(env.write(b, b"x").await), invalid, "write {b:?}");
        assert_eq!(kind(env.append(b, b"x").await), invalid, "append {b:?}");
        assert_eq!(kind(env.sync_file(b).await), invalid, "sync_file {b:?}");
        assert_eq!(kind(env.sync_dir(b).await), invalid, "sync_dir {b:?}");
        assert_eq!(kind(env.remove_file(b).await), invalid, "remove_file {b:?}");
        assert_eq!(kind(env.create_dir_all(b).await), invalid, "mkdir {b:?}");
        assert_eq!(kind(env.list_dir(b).await), invalid, "list_dir {b:?}");
        assert_eq!(kind(env.rename(ok, b).await), invalid, "rename to {b:?}");
        assert_eq!(kind(env.rename(b, ok).await), invalid, "rename from {b:?}");
        let files = [b.to_path_buf()];
        assert_eq!(
            kind(env.sync_many(&files, &[]).await),
            invalid,
            "sync_many {b:?}"
        );
        assert_eq!(
            kind(env.sync_many(&[], &files).await),
            invalid,
            "sync_many {b:?}"
        );
        let many = env.write_many(&[(b.to_path_buf(), b"x")]).await;
        assert_eq!(many.len(), 1);
        assert_eq!(
            many.into_iter().next().map(kind),
            Some(invalid),
            "write_many {b:?}"
        );
    }
    assert_eq!(env.read(ok).await.expect("still there"), b"x");
    env.remove_file(ok).await.expect("remove");
    let after = env.list_dir(Path::new(".")).await.expect("list the root");
    assert_eq!(before, after, "refused paths created nothing in the root");
}

/// "" and "." are the root and `.` components are dropped: `./conformance/./x` is
/// `conformance/x`.
async fn dot_is_the_root<E: Env>(env: &E, base: &Path) {
    let root = env.list_dir(Path::new(".")).await.expect("list_dir .");
    assert!(root.iter().any(|n| n == BASE), "{root:?} lists {BASE}");
    assert_eq!(
        env.list_dir(Path::new("")).await.expect("list_dir \"\""),
        root
    );
    env.sync_dir(Path::new(".")).await.expect("sync_dir .");
    env.sync_dir(Path::new("")).await.expect("sync_dir \"\"");
    env.write(Path::new("./conformance/./dot"), b"dot")
        .await
        .expect("write through . components");
    assert_eq!(env.read(&base.join("dot")).await.expect("read"), b"dot");
    env.remove_file(&base.join(".").join("dot"))
        .await
        .expect("remove through a . component");
}

async fn write_truncates<E: Env>(env: &E, dir: &Path) {
    let f = dir.join("f");
    env.write(&f, b"a long first version").await.expect("write");
    env.write(&f, b"short").await.expect("rewrite");
    assert_eq!(
        env.read(&f).await.expect("read"),
        b"short",
        "write truncates"
    );
    env.write(&f, b"").await.expect("write nothing");
    assert_eq!(
        env.read(&f).await.expect("read"),
        b"",
        "an empty write empties"
    );
}

async fn write_many_reports_each_file<E: Env>(env: &E, dir: &Path) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    env.write(&a, b"old and longer").await.expect("write");
    let results = env
        .write_many(&[
            (a.clone(), &b"new"[..]),
            (dir.join("no-such-dir").join("x"), b"x"),
            (b.clone(), b"bee"),
        ])
        .await;
    assert_eq!(results.len(), 3, "one result per file");
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(
        matches!(&results[1], Err(e) if e.kind() == io::ErrorKind::NotFound),
        "{results:?}"
    );
    assert_eq!(env.read(&a).await.expect("read"), b"new", "truncated");
    assert_eq!(env.read(&b).await.expect("read"), b"bee");
}

async fn write_spliced_copies_the_source<E: Env>(env: &E, dir: &Path) {
    let (src, out) = (dir.join("src"), dir.join("out"));
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    env.write(&src, &body).await.expect("write");
    env.write(&out, b"an older, longer file than the head")
        .await
        .expect("write");
    env.write_spliced(&out, b"head:", &src)
        .await
        .expect("write_spliced");
    let got = env.read(&out).await.expect("read");
    assert!(
        got.starts_with(b"head:") && got[5..] == body[..],
        "head then source, truncated"
    );
    assert_eq!(
        env.read(&src).await.expect("read"),
        body,
        "the source stays"
    );
    let missing = env
        .write_spliced(&dir.join("x"), b"h", &dir.join("no-such-file"))
        .await;
    assert!(
        matches!(&missing, Err(e) if e.kind() == io::ErrorKind::NotFound),
        "{missing:?}"
    );
}

async fn append_creates<E: Env>(env: &E, dir: &Path) {
    let f = dir.join("log");
    env.append(&f, b"one\n").await.expect("append creates");
    env.append(&f, b"two\n").await.expect("append");
    assert_eq!(env.read(&f).await.expect("read"), b"one\ntwo\n");
}

async fn rename_replaces<E: Env>(env: &E, dir: &Path) {
    let (tmp, fin) = (dir.join("tmp"), dir.join("final"));
    env.write(&fin, b"old").await.expect("write");
    env.write(&tmp, b"new").await.expect("write");
    env.rename(&tmp, &fin)
        .await
        .expect("rename over an existing file");
    assert_eq!(env.read(&fin).await.expect("read"), b"new", "replaced");
    assert_eq!(kind(env.read(&tmp).await), io::ErrorKind::NotFound, "moved");
    assert_eq!(
        env.list_dir(dir).await.expect("list"),
        ["final"],
        "one name after the rename"
    );
    assert_eq!(
        kind(env.rename(&tmp, &fin).await),
        io::ErrorKind::NotFound,
        "rename of a missing file"
    );
    assert_eq!(env.read(&fin).await.expect("read"), b"new", "untouched");
}

async fn missing_is_not_found<E: Env>(env: &E, dir: &Path) {
    let nf = io::ErrorKind::NotFound;
    let gone = dir.join("gone");
    assert_eq!(kind(env.read(&gone).await), nf, "read");
    assert_eq!(kind(env.remove_file(&gone).await), nf, "remove_file");
    assert_eq!(kind(env.sync_file(&gone).await), nf, "sync_file");
    assert_eq!(kind(env.sync_dir(&gone).await), nf, "sync_dir");
    assert_eq!(kind(env.list_dir(&gone).await), nf, "list_dir");
    let inside = gone.join("x");
    assert_eq!(
        kind(env.write(&inside, b"x").await),
        nf,
        "write in a missing dir"
    );
    assert_eq!(
        kind(env.append(&inside, b"x").await),
        nf,
        "append in a missing dir"
    );
    env.write(&dir.join("here"), b"x").await.expect("write");
    assert_eq!(
        kind(env.rename(&dir.join("here"), &inside).await),
        nf,
        "rename into a missing dir"
    );
    assert_eq!(env.read(&dir.join("here")).await.expect("kept"), b"x");
    env.remove_file(&dir.join("here")).await.expect("remove");
    assert_eq!(
        kind(env.remove_file(&dir.join("here")).await),
        nf,
        "removed"
    );
}

async fn syncs_succeed_on_what_exists<E: Env>(env: &E, dir: &Path) {
    let f = dir.join("f");
    env.write(&f, b"x").await.expect("write");
    env.sync_file(&f).await.expect("sync_file");
    env.sync_dir(dir).await.expect("sync_dir");
    env.sync_many(std::slice::from_ref(&f), &[dir.to_path_buf()])
        .await
        .expect("sync_many");
    env.sync_many(&[], &[]).await.expect("an empty sync_many");
    assert_eq!(
        kind(env.sync_many(&[dir.join("gone")], &[]).await),
        io::ErrorKind::NotFound,
        "sync_many of a missing file"
    );
    assert_eq!(
        kind(env.sync_many(&[], &[dir.join("gone")]).await),
        io::ErrorKind::NotFound,
        "sync_many of a missing directory"
    );
}

async fn create_dir_all_is_idempotent<E: Env>(env: &E, dir: &Path) {
    let deep = dir.join("a").join("b").join("c");
    env.create_dir_all(&deep).await.expect("mkdir -p");
    env.create_dir_all(&deep).await.expect("again");
    env.create_dir_all(&dir.join("a"))
        .await
        .expect("an ancestor");
    assert_eq!(env.list_dir(&dir.join("a")).await.expect("list"), ["b"]);
    assert_eq!(
        env.list_dir(&deep).await.expect("list"),
        Vec::<String>::new()
    );
    env.write(&deep.join("f"), b"x")
        .await
        .expect("write inside");
}

/// Sorted by name (bytes), files and directories together, and exactly the names created:
/// no temporary files left by a write, a rename or an append.
async fn list_dir_is_sorted_and_exact<E: Env>(env: &E, dir: &Path) {
    for name in ["c", "a", "B", "b"] {
        env.write(&dir.join(name), b"x").await.expect("write");
    }
    env.create_dir_all(&dir.join("aa")).await.expect("mkdir");
    env.append(&dir.join("log"), b"x").await.expect("append");
    env.write(&dir.join("t"), b"x").await.expect("write");
    env.rename(&dir.join("t"), &dir.join("c"))
        .await
        .expect("rename");
    env.sync_many(&[dir.join("c")], &[dir.to_path_buf()])
        .await
        .expect("sync_many");
    assert_eq!(
        env.list_dir(dir).await.expect("list"),
        ["B", "a", "aa", "b", "c", "log"]
    );
}
