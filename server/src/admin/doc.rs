//! The config as an editable document (toml_edit), so an edit changes only what it must:
//! comments, key order and formatting of everything else survive byte for byte.
//!
//! Every edit is checked by parsing the new text with [`config::parse`] — the same parser
//! `serve` uses — before anything is written, so a duplicate, an unknown account or an
//! invalid address comes out as the parser's `file:line:col` error and the file is untouched.

use std::path::{Path, PathBuf};

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use super::files;
use crate::config::{self, ServerConfig};

/// An open config file: its parsed meaning and its editable text.
pub struct ConfigDoc {
    pub path: PathBuf,
    pub config: ServerConfig,
    pub doc: DocumentMut,
}

impl ConfigDoc {
    /// Reads the file; it must already be a valid config (we never edit a broken one into
    /// another broken one).
    pub fn open(path: &Path) -> Result<ConfigDoc, String> {
        let text = files::read_text(path).map_err(|e| e.to_string())?;
        let config = config::parse(path, &text).map_err(|e| e.to_string())?;
        let doc = text.parse::<DocumentMut>().map_err(|e| e.to_string())?;
        Ok(ConfigDoc {
            path: path.to_path_buf(),
            config,
            doc,
        })
    }

    /// The text the document would be written as, validated.
    pub fn checked_text(&self) -> Result<String, String> {
        let text = self.doc.to_string();
        let parsed = config::parse(&self.path, &text).map_err(|e| e.to_string())?;
        super::lists::check_loops(&parsed).map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok(text)
    }

    /// Validates and writes the edited config atomically.
    pub fn save(&self) -> Result<(), String> {
        let text = self.checked_text()?;
        files::write_atomic(&self.path, &text).map_err(|e| e.to_string())
    }

    /// The item at a top-level key, created with `make` when absent.
    pub fn item_or(&mut self, key: &str, make: impl FnOnce() -> Item) -> &mut Item {
        let root = self.doc.as_table_mut();
        if !root.contains_key(key) {
            root.insert(key, make());
        }
        &mut root[key]
    }

    /// A top-level table (`[aliases]`), created when absent.
    pub fn table(&mut self, key: &str) -> Result<&mut Table, String> {
        self.item_or(key, || Item::Table(Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("`{key}` is not a table; edit it by hand"))
    }
}

/// A new empty array item (`key = []`).
pub fn empty_array() -> Item {
    Item::Value(Value::Array(Array::new()))
}

/// Addresses compare without case (RFC 5321 §2.4: domains always; local parts in practice,
/// as our directory keys them).
pub fn same(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Appends to an array in the style of its last element: one per line stays one per line
/// (same indentation, without the comments that precede the last element), else `, x`.
pub fn push_like(arr: &mut Array, mut v: Value) {
    let last_prefix = arr
        .iter()
        .last()
        .and_then(|last| last.decor().prefix())
        .and_then(|p| p.as_str())
        .map(str::to_string);
    if let Some(p) = last_prefix {
        let prefix = match p.rfind('\n') {
            Some(at) => format!("\n{}", &p[at + 1..]),
            None => " ".to_string(),
        };
        v.decor_mut().set_prefix(prefix);
    }
    arr.push_formatted(v);
}

/// Removes element `i`, giving its place (and first-element spacing) to the next one.
pub fn remove_at(arr: &mut Array, i: usize) {
    let prefix = arr.get(i).and_then(|v| v.decor().prefix().cloned());
    arr.remove(i);
    if i == 0 {
        if let (Some(p), Some(next)) = (prefix, arr.get_mut(0)) {
            next.decor_mut().set_prefix(p);
        }
    }
}

/// Position of a string element (case-insensitive).
pub fn find_string(arr: &Array, s: &str) -> Option<usize> {
    arr.iter()
        .position(|v| v.as_str().is_some_and(|x| same(x, s)))
}

/// An array of entries each named by an `address` key: `accounts` (plain strings or tables)
/// and `lists` (`[[lists]]` or an inline array of tables).
pub struct Entries<'a>(pub &'a mut Item);

impl Entries<'_> {
    fn address_of(v: &Value) -> Option<&str> {
        match v {
            Value::String(s) => Some(s.value()),
            Value::InlineTable(t) => t.get("address").and_then(Value::as_str),
            _ => None,
        }
    }

    pub fn find(&self, address: &str) -> Option<usize> {
        match &*self.0 {
            Item::Value(Value::Array(a)) => a
                .iter()
                .position(|v| Self::address_of(v).is_some_and(|x| same(x, address))),
            Item::ArrayOfTables(t) => t.iter().position(|t| {
                t.get("address")
                    .and_then(Item::as_str)
                    .is_some_and(|x| same(x, address))
            }),
            _ => None,
        }
    }

    /// Appends a plain address (when `table` is empty and the array allows strings) or a
    /// table with `address` first.
    pub fn push(&mut self, address: &str, settings: Vec<(&str, Value)>) -> Result<(), String> {
        match &mut *self.0 {
            Item::Value(Value::Array(a)) => {
                let v = if settings.is_empty() {
                    Value::from(address)
                } else {
                    let mut t = InlineTable::new();
                    t.insert("address", Value::from(address));
                    for (k, v) in settings {
                        t.insert(k, v);
                    }
                    Value::InlineTable(t)
                };
                push_like(a, v);
                Ok(())
            }
            Item::ArrayOfTables(aot) => {
                let mut t = Table::new();
                t.insert("address", toml_edit::value(address));
                for (k, v) in settings {
                    t.insert(k, Item::Value(v));
                }
                aot.push(t);
                Ok(())
            }
            _ => Err("not an array of entries; edit it by hand".to_string()),
        }
    }

    pub fn remove(&mut self, i: usize) {
        match &mut *self.0 {
            Item::Value(Value::Array(a)) => remove_at(a, i),
            Item::ArrayOfTables(aot) => aot.remove(i),
            _ => {}
        }
    }

    /// Sets (or with `None` removes) one setting of entry `i`. A plain address string
    /// becomes an inline table only when it gets a setting, keeping its place and spacing,
    /// and turns back into the string when its last setting goes.
    pub fn set(&mut self, i: usize, key: &str, value: Option<Value>) {
        match &mut *self.0 {
            Item::Value(Value::Array(a)) => {
                let Some(v) = a.get_mut(i) else { return };
                if let Value::String(s) = v {
                    let Some(new) = value else { return };
                    let mut t = InlineTable::new();
                    t.insert("address", Value::from(s.value().as_str()));
                    t.insert(key, new);
                    let mut table = Value::InlineTable(t);
                    *table.decor_mut() = s.decor().clone();
                    *v = table;
                } else if let Value::InlineTable(t) = v {
                    match value {
                        Some(new) => {
                            t.insert(key, new);
                        }
                        None => {
                            t.remove(key);
                        }
                    }
                    // Back to a plain string once only the address is left.
                    let only = (t.len() == 1).then(|| t.get("address").and_then(Value::as_str));
                    if let Some(Some(address)) = only {
                        let mut plain = Value::from(address);
                        *plain.decor_mut() = t.decor().clone();
                        *v = plain;
                    }
                }
            }
            Item::ArrayOfTables(aot) => {
                let Some(t) = aot.get_mut(i) else { return };
                match value {
                    Some(new) => {
                        t.insert(key, Item::Value(new));
                    }
                    None => {
                        t.remove(key);
                    }
                }
            }
            _ => {}
        }
    }

    /// Entry `i` as an item-like handle for nested edits (a list's `members`).
    pub fn entry_mut(&mut self, i: usize) -> Option<EntryMut<'_>> {
        match &mut *self.0 {
            Item::Value(Value::Array(a)) => match a.get_mut(i)? {
                Value::InlineTable(t) => Some(EntryMut::Inline(t)),
                _ => None,
            },
            Item::ArrayOfTables(aot) => aot.get_mut(i).map(EntryMut::Table),
            _ => None,
        }
    }
}

/// One table-like entry of [`Entries`].
pub enum EntryMut<'a> {
    Table(&'a mut Table),
    Inline(&'a mut InlineTable),
}

impl EntryMut<'_> {
    /// The string array at `key`, created when absent.
    pub fn strings(&mut self, key: &str) -> Result<&mut Array, String> {
        let bad = || format!("`{key}` is not an array; edit it by hand");
        match self {
            EntryMut::Table(t) => {
                if !t.contains_key(key) {
                    t.insert(key, empty_array());
                }
                t[key].as_array_mut().ok_or_else(bad)
            }
            EntryMut::Inline(t) => {
                if !t.contains_key(key) {
                    t.insert(key, Value::Array(Array::new()));
                }
                t.get_mut(key).and_then(Value::as_array_mut).ok_or_else(bad)
            }
        }
    }
}

/// A new `[[lists]]`-style array of tables.
pub fn array_of_tables() -> Item {
    Item::ArrayOfTables(ArrayOfTables::new())
}
