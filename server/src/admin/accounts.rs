//! `domain`, `account`, `disable`/`enable` and `alias`: edits of the directory part of the
//! config. Each returns what to print; the caller saves (see [`ConfigDoc::save`]).

use std::fmt::Write;

use toml_edit::{Array, Value};

use super::doc::{empty_array, find_string, push_like, remove_at, same, ConfigDoc, Entries};
use crate::mail::Address;

/// `domain add`: the domain must look like one (checked as `postmaster@DOMAIN` would be).
pub fn domain_add(doc: &mut ConfigDoc, domain: &str) -> Result<String, String> {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    Address::parse(&format!("postmaster@{domain}"))
        .map_err(|e| format!("invalid domain {domain:?}: {e}"))?;
    let arr = domain_array(doc)?;
    if find_string(arr, &domain).is_some() {
        return Err(format!("domain {domain} is already configured"));
    }
    push_like(arr, Value::from(domain.as_str()));
    Ok(format!("added domain {domain}\n"))
}

/// `domain remove`: refused by validation while accounts of the domain remain.
pub fn domain_remove(doc: &mut ConfigDoc, domain: &str) -> Result<String, String> {
    let arr = domain_array(doc)?;
    let i = find_string(arr, domain.trim_end_matches('.'))
        .ok_or_else(|| format!("domain {domain} is not configured"))?;
    remove_at(arr, i);
    Ok(format!("removed domain {domain}\n"))
}

pub fn domain_list(doc: &ConfigDoc) -> String {
    doc.config
        .domains
        .iter()
        .map(|d| format!("{d}\n"))
        .collect()
}

fn domain_array(doc: &mut ConfigDoc) -> Result<&mut Array, String> {
    doc.item_or("domains", empty_array)
        .as_array_mut()
        .ok_or_else(|| "`domains` is not an array; edit it by hand".to_string())
}

fn accounts(doc: &mut ConfigDoc) -> Entries<'_> {
    Entries(doc.item_or("accounts", empty_array))
}

/// The index of an existing account, or a clear error.
pub fn account_index(doc: &mut ConfigDoc, account: &str) -> Result<usize, String> {
    accounts(doc)
        .find(account)
        .ok_or_else(|| format!("no account {account}"))
}

/// `account add`: a plain string unless a quota is given (then a table).
pub fn account_add(
    doc: &mut ConfigDoc,
    account: &str,
    quota_bytes: Option<u64>,
    quota_messages: Option<u64>,
) -> Result<String, String> {
    if accounts(doc).find(account).is_some() {
        return Err(format!("account {account} exists"));
    }
    let mut settings = Vec::new();
    if let Some(b) = quota_bytes {
        settings.push(("quota_bytes", int(b)?));
    }
    if let Some(m) = quota_messages {
        settings.push(("quota_messages", int(m)?));
    }
    accounts(doc).push(account, settings)?;
    Ok(format!("added account {account}\n"))
}

fn int(n: u64) -> Result<Value, String> {
    i64::try_from(n)
        .map(Value::from)
        .map_err(|_| format!("{n} is too large for TOML"))
}

pub fn account_remove(doc: &mut ConfigDoc, account: &str) -> Result<String, String> {
    let i = account_index(doc, account)?;
    accounts(doc).remove(i);
    Ok(format!("removed account {account}\n"))
}

pub fn account_list(doc: &ConfigDoc) -> String {
    let mut out = String::new();
    for a in &doc.config.accounts {
        let t = a.table();
        let mut notes = Vec::new();
        if t.disabled {
            notes.push("disabled".to_string());
        }
        if t.password.is_none() {
            notes.push("no password".to_string());
        }
        if let Some(b) = t.quota_bytes {
            notes.push(format!("quota {b} octets"));
        }
        if let Some(m) = t.quota_messages {
            notes.push(format!("quota {m} messages"));
        }
        let _ = writeln!(out, "{}{}", t.address, bracket(&notes));
    }
    out
}

fn bracket(notes: &[String]) -> String {
    if notes.is_empty() {
        String::new()
    } else {
        format!(" ({})", notes.join(", "))
    }
}

/// Sets one setting of an account (the string becomes a table if it must).
pub fn account_set(
    doc: &mut ConfigDoc,
    account: &str,
    key: &str,
    value: Option<Value>,
) -> Result<(), String> {
    let i = account_index(doc, account)?;
    accounts(doc).set(i, key, value);
    Ok(())
}

/// `disable`: the account keeps its mail and settings but receives nothing and cannot log
/// in; `enable` removes the setting again.
pub fn set_disabled(doc: &mut ConfigDoc, account: &str, disabled: bool) -> Result<String, String> {
    account_set(
        doc,
        account,
        "disabled",
        disabled.then(|| Value::from(true)),
    )?;
    Ok(format!(
        "{} account {account}\n",
        if disabled { "disabled" } else { "enabled" }
    ))
}

/// `alias add`: a new alias, or more targets for an existing one.
pub fn alias_add(doc: &mut ConfigDoc, alias: &str, targets: &[String]) -> Result<String, String> {
    if targets.is_empty() {
        return Err("alias add needs at least one target".to_string());
    }
    let table = doc.table("aliases")?;
    let existing = table
        .iter()
        .find(|(k, _)| same(k, alias))
        .map(|(k, _)| k.to_string());
    let key = existing.unwrap_or_else(|| alias.to_string());
    if !table.contains_key(&key) {
        table.insert(&key, empty_array());
    }
    let arr = table[key.as_str()]
        .as_array_mut()
        .ok_or_else(|| format!("alias {alias} is not an array; edit it by hand"))?;
    let mut added = 0;
    for t in targets {
        if find_string(arr, t).is_none() {
            push_like(arr, Value::from(t.as_str()));
            added += 1;
        }
    }
    if added == 0 {
        return Err(format!("alias {alias} already has those targets"));
    }
    Ok(format!("alias {alias}: {added} target(s) added\n"))
}

pub fn alias_remove(doc: &mut ConfigDoc, alias: &str) -> Result<String, String> {
    let table = doc.table("aliases")?;
    let key = table
        .iter()
        .find(|(k, _)| same(k, alias))
        .map(|(k, _)| k.to_string())
        .ok_or_else(|| format!("no alias {alias}"))?;
    table.remove(&key);
    Ok(format!("removed alias {alias}\n"))
}

pub fn alias_list(doc: &ConfigDoc) -> String {
    let mut out = String::new();
    for (k, v) in &doc.config.aliases {
        let _ = writeln!(out, "{k} -> {}", v.join(", "));
    }
    out
}
