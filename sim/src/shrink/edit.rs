//! Candidate edits of a scenario, made on the file as a generic TOML document (toml_edit,
//! so the comments and layout of what is kept survive into the shrunk file). Nothing here
//! knows the scenario model beyond a few key-name conventions, so a fault kind, an actor
//! step or a remote option added later shrinks without a change here:
//!
//! - every array of tables (`[[fault]]`, `[[actor]]`, `[[remote]]`, `[[expect]]`, nested
//!   ones) and every inline array of inline tables (an actor's `steps`) loses elements,
//!   halves first, then quarters, ... then single elements (delta debugging);
//! - a `[from, to]` range under a key ending in `_secs` or `_ms` becomes one number: first
//!   the value the seed picks for it (so the run stays the one that failed), else either end;
//! - numbers under such keys, and `count`s, shrink toward zero (0, then halving).
//!
//! The scenario's `[[expect]]` entries keep their numbers (they are what is checked, not
//! the world). A candidate the loader rejects is simply not taken, so an edit never has to
//! know what makes a file valid.

use std::fmt::Write as _;

use toml_edit::{DocumentMut, Item, Table, Value};

use crate::scenario::Secs;

/// One step of a path into the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A change to try.
#[derive(Clone, Debug)]
pub enum Edit {
    /// Remove elements `start..start + len` of the array at the path.
    Remove {
        path: Vec<Seg>,
        start: usize,
        len: usize,
    },
    /// Replace the value at the path by a number.
    Set { path: Vec<Seg>, value: Number },
}

/// A number to write: integers stay integers (a `count`), seconds may have a fraction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    fn value(self) -> Value {
        match self {
            Number::Int(i) => Value::from(i),
            Number::Float(f) => Value::from(f),
        }
    }
}

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

/// An edit and the line that says what it did.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub edit: Edit,
    pub label: String,
}

/// The kinds of edit, tried in this order in every round: ranges are pinned first, while
/// every fault still has the index its seed-picked values are salted with (removing
/// fault 0 would change what fault 1 picks); then whole sections, then steps, then numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    Ranges,
    Tables,
    Steps,
    Numbers,
}

pub const PASSES: [Pass; 4] = [Pass::Ranges, Pass::Tables, Pass::Steps, Pass::Numbers];

/// The candidates of one pass over `doc`, in a fixed order (document order; for removals,
/// larger chunks first).
pub fn candidates(doc: &DocumentMut, pass: Pass, seed: u64) -> Vec<Candidate> {
    let mut walk = Walk {
        pass,
        seed,
        doc,
        out: Vec::new(),
    };
    walk.table(doc.as_table(), &mut Vec::new());
    walk.out
}

/// `doc` with `edit` made, or `None` if the path no longer leads anywhere.
pub fn apply(doc: &DocumentMut, edit: &Edit) -> Option<DocumentMut> {
    let mut doc = doc.clone();
    match edit {
        Edit::Remove { path, start, len } => {
            match navigate(Slot::Table(doc.as_table_mut()), path)? {
                Slot::Item(Item::ArrayOfTables(a)) if start + len <= a.len() => {
                    for i in (*start..start + len).rev() {
                        a.remove(i);
                    }
                }
                Slot::Item(Item::Value(Value::Array(a))) | Slot::Value(Value::Array(a))
                    if start + len <= a.len() =>
                {
                    for i in (*start..start + len).rev() {
                        a.remove(i);
                    }
                }
                _ => return None,
            }
        }
        Edit::Set { path, value } => match navigate(Slot::Table(doc.as_table_mut()), path)? {
            Slot::Item(Item::Value(v)) | Slot::Value(v) => {
                let decor = v.decor().clone();
                *v = value.value();
                *v.decor_mut() = decor;
            }
            _ => return None,
        },
    }
    Some(doc)
}

/// Sets `[world] seed` (creating `[world]` if the file has none) and says in the
/// description where the file came from, so a shrunk file attached to a report explains
/// itself.
pub fn set_seed(doc: &mut DocumentMut, seed: u64, origin: &str) {
    // Seeds past i64 do not fit a TOML integer; the loader would refuse them anyway.
    let seed_value = i64::try_from(seed).unwrap_or(i64::MAX);
    doc["world"]["seed"] = toml_edit::value(seed_value);
    let was = doc
        .get("description")
        .and_then(|d| d.as_str())
        .unwrap_or("")
        .to_string();
    let note = format!("Shrunk by `mailsim shrink` from {origin} under seed {seed}.");
    let text = if was.is_empty() {
        note
    } else {
        format!("{note} The original: {was}")
    };
    doc["description"] = toml_edit::value(text);
}

enum Slot<'a> {
    Item(&'a mut Item),
    Table(&'a mut Table),
    Value(&'a mut Value),
}

fn navigate<'a>(slot: Slot<'a>, path: &[Seg]) -> Option<Slot<'a>> {
    let Some((seg, rest)) = path.split_first() else {
        return Some(slot);
    };
    let next = match (slot, seg) {
        (Slot::Item(Item::Table(t)) | Slot::Table(t), Seg::Key(k)) => Slot::Item(t.get_mut(k)?),
        (Slot::Item(Item::ArrayOfTables(a)), Seg::Index(i)) => Slot::Table(a.get_mut(*i)?),
        (Slot::Item(Item::Value(v)) | Slot::Value(v), Seg::Key(k)) => {
            Slot::Value(v.as_inline_table_mut()?.get_mut(k)?)
        }
        (Slot::Item(Item::Value(v)) | Slot::Value(v), Seg::Index(i)) => {
            Slot::Value(v.as_array_mut()?.get_mut(*i)?)
        }
        _ => return None,
    };
    navigate(next, rest)
}

/// Keys whose numbers are durations or amounts of the world, safe to try smaller.
fn shrinkable_key(key: &str) -> bool {
    (key.ends_with("_secs") || key.ends_with("_ms") || key == "count") && key != "tick_ms"
}

/// `(start, len)` chunks of `0..n`: all, halves, quarters, ... singles; pairs also at odd
/// offsets (an actor's steps come as MAIL..DATA + message pairs after an EHLO).
fn chunks(n: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut size = n;
    while size >= 1 {
        let mut start = 0;
        while start < n {
            out.push((start, size.min(n - start)));
            start += size;
        }
        if size == 2 {
            out.extend((1..n.saturating_sub(1)).step_by(2).map(|s| (s, 2)));
        }
        size = if size == 1 {
            0
        } else {
            size.div_ceil(2).min(size - 1)
        };
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|c| seen.insert(*c));
    out
}

struct Walk<'a> {
    pass: Pass,
    seed: u64,
    doc: &'a DocumentMut,
    out: Vec<Candidate>,
}

impl Walk<'_> {
    fn in_expect(path: &[Seg]) -> bool {
        path.first() == Some(&Seg::Key("expect".into()))
    }

    fn last_key(path: &[Seg]) -> Option<&str> {
        match path.last() {
            Some(Seg::Key(k)) => Some(k),
            _ => None,
        }
    }

    fn table(&mut self, t: &Table, path: &mut Vec<Seg>) {
        for (k, item) in t.iter() {
            path.push(Seg::Key(k.to_string()));
            self.item(item, path);
            path.pop();
        }
    }

    fn item(&mut self, item: &Item, path: &mut Vec<Seg>) {
        match item {
            Item::Table(t) => self.table(t, path),
            Item::ArrayOfTables(a) => {
                if self.pass == Pass::Tables {
                    self.removals(path, a.len());
                }
                for (i, t) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    self.table(t, path);
                    path.pop();
                }
            }
            Item::Value(v) => self.value(v, path),
            Item::None => {}
        }
    }

    fn value(&mut self, v: &Value, path: &mut Vec<Seg>) {
        let numbers_here =
            !Self::in_expect(path) && Self::last_key(path).is_some_and(shrinkable_key);
        match v {
            Value::Array(a) => {
                let tables = !a.is_empty() && a.iter().all(|e| e.is_inline_table());
                if tables && self.pass == Pass::Steps {
                    self.removals(path, a.len());
                }
                if numbers_here && self.pass == Pass::Ranges {
                    self.range(a, path);
                }
                for (i, e) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    self.value(e, path);
                    path.pop();
                }
            }
            Value::InlineTable(t) => {
                for (k, e) in t.iter() {
                    path.push(Seg::Key(k.to_string()));
                    self.value(e, path);
                    path.pop();
                }
            }
            Value::Integer(i) if numbers_here && self.pass == Pass::Numbers => {
                let x = *i.value();
                if x > 0 {
                    self.set(path, Number::Int(x), Number::Int(0));
                }
                if x / 2 > 0 {
                    self.set(path, Number::Int(x), Number::Int(x / 2));
                }
            }
            Value::Float(f) if numbers_here && self.pass == Pass::Numbers => {
                let x = *f.value();
                let half = (x * 500.0).round() / 1000.0;
                if x > 0.0 {
                    self.set(path, Number::Float(x), Number::Float(0.0));
                }
                if half > 0.0 && half < x {
                    self.set(path, Number::Float(x), Number::Float(half));
                }
            }
            _ => {}
        }
    }

    fn set(&mut self, path: &[Seg], from: Number, to: Number) {
        let label = format!("{} {from} -> {to}", self.describe(path));
        self.out.push(Candidate {
            edit: Edit::Set {
                path: path.to_vec(),
                value: to,
            },
            label,
        });
    }

    /// `[from, to]` → the number this seed picks, else `from`, else `to`.
    fn range(&mut self, a: &toml_edit::Array, path: &[Seg]) {
        let num = |v: &Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
        let (Some(lo), Some(hi)) = (a.get(0).and_then(num), a.get(1).and_then(num)) else {
            return;
        };
        if a.len() != 2 || lo >= hi {
            return;
        }
        let text = format!("[{lo}, {hi}]");
        let mut tried = Vec::new();
        if let Some(salt) = fault_salt(path) {
            let picked = Secs::Range([lo, hi]).pick(self.seed, salt);
            tried.push((picked, format!(" (the value seed {} picks)", self.seed)));
        }
        tried.push((lo, String::new()));
        tried.push((hi, String::new()));
        for (to, why) in tried {
            let label = format!("{} {text} -> {to}{why}", self.describe(path));
            self.out.push(Candidate {
                edit: Edit::Set {
                    path: path.to_vec(),
                    value: Number::Float(to),
                },
                label,
            });
        }
    }

    fn removals(&mut self, path: &[Seg], n: usize) {
        for (start, len) in chunks(n) {
            let mut what = self.describe(path);
            if len == 1 {
                let mut elem = path.to_vec();
                elem.push(Seg::Index(start));
                what = format!("{}{}", self.describe(&elem), self.gist(&elem));
            } else {
                let _ = write!(what, "[{}..{}]", start, start + len);
            }
            self.out.push(Candidate {
                edit: Edit::Remove {
                    path: path.to_vec(),
                    start,
                    len,
                },
                label: format!("removed {what}"),
            });
        }
    }

    /// `actor[0] (s1).steps[3]`: the path, with the `name` of named elements.
    fn describe(&self, path: &[Seg]) -> String {
        let mut out = String::new();
        for (i, seg) in path.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(n) => {
                    let _ = write!(out, "[{n}]");
                    if let Some(name) = self.name_at(&path[..=i]) {
                        let _ = write!(out, " ({name})");
                    }
                }
            }
        }
        out
    }

    fn name_at(&self, path: &[Seg]) -> Option<String> {
        let mut doc = self.doc.clone();
        let name = match navigate(Slot::Table(doc.as_table_mut()), path)? {
            Slot::Table(t) => t.get("name")?.as_str()?.to_string(),
            Slot::Value(v) => v.as_inline_table()?.get("name")?.as_str()?.to_string(),
            Slot::Item(_) => return None,
        };
        Some(name)
    }

    /// ` send = "QUIT"`: what a removed inline element was, shortened.
    fn gist(&self, path: &[Seg]) -> String {
        let mut doc = self.doc.clone();
        let Some(Slot::Value(Value::InlineTable(t))) =
            navigate(Slot::Table(doc.as_table_mut()), path)
        else {
            return String::new();
        };
        let Some((k, v)) = t.iter().next() else {
            return String::new();
        };
        let mut text = v.to_string().trim().to_string();
        if text.chars().count() > 60 {
            text = text.chars().take(57).collect::<String>() + "...";
        }
        format!(": {k} = {text}")
    }
}

/// The salt the world draws `fault[i]`'s seed-picked values with: `2i` for when it starts
/// (`at_secs`, `from_secs`), `2i + 1` for the second value (`restart_after_secs`,
/// `until_secs`, `for_secs`). Only a first guess: the picked value is kept only if the run
/// with it still fails the same way, and either end of the range is tried next.
fn fault_salt(path: &[Seg]) -> Option<u64> {
    match path {
        [Seg::Key(f), Seg::Index(i), Seg::Key(k)] if f == "fault" => match k.as_str() {
            "at_secs" | "from_secs" => Some(2 * *i as u64),
            "restart_after_secs" | "until_secs" | "for_secs" => Some(2 * *i as u64 + 1),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_go_from_all_to_halves_to_singles() {
        assert_eq!(chunks(1), vec![(0, 1)]);
        assert_eq!(
            chunks(4),
            vec![
                (0, 4),
                (0, 2),
                (2, 2),
                (1, 2),
                (0, 1),
                (1, 1),
                (2, 1),
                (3, 1)
            ]
        );
        let five = chunks(5);
        assert_eq!(five[0], (0, 5));
        assert_eq!(five[1..3], [(0, 3), (3, 2)]);
        assert!(five.contains(&(4, 1)));
    }

    const DOC: &str = r#"
[world]
duration_secs = 30 # kept comment

[[fault]]
kind = "crash"
at_secs = [0.3, 0.5]

[[actor]]
name = "s1"
steps = [
  { send = "EHLO a" },
  { send = "QUIT" },
]

[[expect]]
count = 3
"#;

    #[test]
    fn removals_and_numbers_edit_the_document_and_keep_comments() {
        let doc: DocumentMut = DOC.parse().unwrap();
        let steps = candidates(&doc, Pass::Steps, 1);
        let quit = steps
            .iter()
            .find(|c| c.label == r#"removed actor[0] (s1).steps[1]: send = "QUIT""#)
            .expect("a candidate per step");
        let edited = apply(&doc, &quit.edit).unwrap().to_string();
        assert!(
            !edited.contains("QUIT") && edited.contains("EHLO a"),
            "{edited}"
        );
        assert!(edited.contains("# kept comment"));

        let tables = candidates(&doc, Pass::Tables, 1);
        assert!(tables.iter().any(|c| c.label == "removed fault[0]"));
        assert!(tables.iter().any(|c| c.label == "removed expect[0]"));

        let numbers: Vec<String> = candidates(&doc, Pass::Numbers, 1)
            .into_iter()
            .map(|c| c.label)
            .collect();
        // The expectation's count is what is checked: never shrunk.
        assert_eq!(
            numbers,
            [
                "world.duration_secs 30 -> 0",
                "world.duration_secs 30 -> 15"
            ]
        );
    }

    #[test]
    fn a_range_is_pinned_to_the_value_the_seed_picks_first() {
        let doc: DocumentMut = DOC.parse().unwrap();
        let ranges = candidates(&doc, Pass::Ranges, 7);
        let picked = Secs::Range([0.3, 0.5]).pick(7, 0);
        assert_eq!(ranges.len(), 3);
        assert_eq!(
            ranges[0].label,
            format!("fault[0].at_secs [0.3, 0.5] -> {picked} (the value seed 7 picks)")
        );
        let edited = apply(&doc, &ranges[0].edit).unwrap().to_string();
        assert!(edited.contains(&format!("at_secs = {picked}")), "{edited}");
        let mut seeded = doc.clone();
        set_seed(&mut seeded, 9, "x.toml");
        let text = seeded.to_string();
        assert!(text.contains("seed = 9"), "{text}");
        assert!(text.contains("from x.toml under seed 9"), "{text}");
        // A file without [world] gets one.
        let mut bare: DocumentMut = "[server]\nhostname = \"a\"\n".parse().unwrap();
        set_seed(&mut bare, 4, "y.toml");
        let parsed: toml::Value = toml::from_str(&bare.to_string()).unwrap();
        assert_eq!(parsed["world"]["seed"].as_integer(), Some(4));
    }
}
