//! The module graph of `server/src` has no cycles, and `mail/` (the core types) imports
//! nothing else of the crate.
//!
//! A cycle between modules is how a storage layer ends up depending on a protocol (the
//! mailbox store once imported the SMTP session's `Transaction`). This test reads the
//! sources, takes every `crate::<module>` path outside test code as an edge from the file's
//! top-level module to `<module>`, and fails with the cycle it finds.

// Reading our own sources is what this test is for; the Env seam rule is about the server's
// behaviour, not its build checks.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Files that only exist under `#[cfg(test)]`: test doubles and test bodies.
fn is_test_file(path: &Path) -> bool {
    matches!(
        path.file_name().and_then(|n| n.to_str()),
        Some("tests.rs" | "fake.rs" | "memenv.rs")
    ) || path.components().any(|c| c.as_os_str() == "tests")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The source without its trailing `#[cfg(test)] mod tests { ... }` block (by convention
/// the last item of a file).
fn without_inline_tests(src: &str) -> &str {
    match src.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &src[..at],
        None => src,
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut modules = BTreeSet::new();
    for p in &files {
        let rel = p.strip_prefix(&root).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        modules.insert(top.trim_end_matches(".rs").to_string());
    }
    modules.remove("lib");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in files.iter().filter(|p| !is_test_file(p)) {
        let rel = p.strip_prefix(&root).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let top = top.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "bin" {
            continue;
        }
        let src = std::fs::read_to_string(p).unwrap();
        let code = without_inline_tests(&src);
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && name != top {
                edges.entry(top.clone()).or_default().insert(name);
            }
        }
        edges.entry(top).or_default();
    }
    edges
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn module_graph_has_no_cycles() {
    let edges = graph();
    let shown: Vec<String> = edges
        .iter()
        .map(|(k, v)| {
            format!(
                "{k} -> {}",
                v.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    println!("{}", shown.join("\n"));
    if let Some(cycle) = find_cycle(&edges) {
        panic!(
            "import cycle: {}\nwhole graph:\n{}",
            cycle.join(" -> "),
            shown.join("\n")
        );
    }
}

#[test]
fn mail_core_imports_nothing_of_the_crate() {
    let edges = graph();
    assert_eq!(edges.get("mail"), Some(&BTreeSet::new()), "{edges:?}");
}

#[test]
fn the_checker_sees_a_cycle() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["a".to_string(), "b".to_string(), "a".to_string()])
    );
}
