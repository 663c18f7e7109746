//! `list add|remove|show|member`: distribution lists (`[[lists]]`), and the loop check
//! every edit passes: a list reaching itself through its members would expand forever (or,
//! expanded once each, silently lose the loop's intent), so it is refused at edit time.

use std::collections::BTreeMap;
use std::fmt::Write;

use toml_edit::Value;

use super::doc::{array_of_tables, find_string, push_like, remove_at, same, ConfigDoc, Entries};
use crate::config::{ListPolicy, ServerConfig};

fn lists(doc: &mut ConfigDoc) -> Entries<'_> {
    Entries(doc.item_or("lists", array_of_tables))
}

fn index(doc: &mut ConfigDoc, list: &str) -> Result<usize, String> {
    lists(doc)
        .find(list)
        .ok_or_else(|| format!("no list {list}"))
}

pub fn policy_name(p: ListPolicy) -> &'static str {
    match p {
        ListPolicy::Anyone => "anyone",
        ListPolicy::Members => "members",
        ListPolicy::Moderators => "moderators",
    }
}

/// `list add ADDR [--policy] [--owner]`: an empty list.
pub fn add(
    doc: &mut ConfigDoc,
    list: &str,
    policy: Option<ListPolicy>,
    owner: Option<&str>,
) -> Result<String, String> {
    if lists(doc).find(list).is_some() {
        return Err(format!("list {list} exists"));
    }
    if doc.config.accounts.iter().any(|a| same(a.address(), list)) {
        return Err(format!(
            "{list} is an account; a list needs its own address"
        ));
    }
    let mut settings = vec![("members", Value::Array(Default::default()))];
    if let Some(p) = policy {
        settings.push(("policy", Value::from(policy_name(p))));
    }
    if let Some(o) = owner {
        settings.push(("owner", Value::from(o)));
    }
    lists(doc).push(list, settings)?;
    Ok(format!("added list {list}\n"))
}

pub fn remove(doc: &mut ConfigDoc, list: &str) -> Result<String, String> {
    let i = index(doc, list)?;
    lists(doc).remove(i);
    Ok(format!("removed list {list}\n"))
}

pub fn show(doc: &ConfigDoc, list: &str) -> Result<String, String> {
    let l = doc
        .config
        .lists
        .iter()
        .find(|l| same(&l.address, list))
        .ok_or_else(|| format!("no list {list}"))?;
    let mut out = String::new();
    let _ = writeln!(out, "list {}", l.address);
    if !l.description.is_empty() {
        let _ = writeln!(out, "description: {}", l.description);
    }
    let _ = writeln!(out, "policy: {}", policy_name(l.policy));
    let _ = writeln!(
        out,
        "owner: {}",
        l.owner.as_deref().unwrap_or("(postmaster of its domain)")
    );
    for m in &l.moderators {
        let _ = writeln!(out, "moderator: {m}");
    }
    let _ = writeln!(out, "members: {}", l.members.len());
    for m in &l.members {
        let _ = writeln!(out, "  {m}");
    }
    Ok(out)
}

pub fn member_add(doc: &mut ConfigDoc, list: &str, member: &str) -> Result<String, String> {
    let i = index(doc, list)?;
    let mut entries = lists(doc);
    let mut entry = entries
        .entry_mut(i)
        .ok_or_else(|| format!("list {list} is not a table; edit it by hand"))?;
    let arr = entry.strings("members")?;
    if find_string(arr, member).is_some() {
        return Err(format!("{member} is already a member of {list}"));
    }
    push_like(arr, Value::from(member));
    Ok(format!("{member} added to {list}\n"))
}

pub fn member_remove(doc: &mut ConfigDoc, list: &str, member: &str) -> Result<String, String> {
    let i = index(doc, list)?;
    let mut entries = lists(doc);
    let mut entry = entries
        .entry_mut(i)
        .ok_or_else(|| format!("list {list} is not a table; edit it by hand"))?;
    let arr = entry.strings("members")?;
    let at =
        find_string(arr, member).ok_or_else(|| format!("{member} is not a member of {list}"))?;
    remove_at(arr, at);
    Ok(format!("{member} removed from {list}\n"))
}

/// Refuses lists that reach themselves through members that are lists, naming the cycle.
/// (The delivery side expands each list once; a loop is still a mistake worth an error.)
pub fn check_loops(config: &ServerConfig) -> Result<(), String> {
    let graph: BTreeMap<String, Vec<String>> = config
        .lists
        .iter()
        .map(|l| {
            (
                l.address.to_ascii_lowercase(),
                l.members.iter().map(|m| m.to_ascii_lowercase()).collect(),
            )
        })
        .collect();
    for start in graph.keys() {
        // Depth-first from each list, with the path so far.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, path)) = stack.pop() {
            for next in graph.get(&at).into_iter().flatten() {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(next.clone());
                    return Err(format!("list loop: {}", cycle.join(" -> ")));
                }
                if graph.contains_key(next) && !path.contains(next) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    Ok(())
}
