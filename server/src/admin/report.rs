//! What `check` found: one finding per record (ok / missing / wrong / error, with the fix),
//! printed as aligned columns with a closing count.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Missing,
    Wrong,
    /// The lookup failed (SERVFAIL, timeout): nothing known.
    Error,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Wrong => "wrong",
            Status::Error => "error",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub status: Status,
    pub what: &'static str,
    pub detail: String,
    pub fix: Option<String>,
}

/// All findings, in check order.
#[derive(Clone, Debug, Default)]
pub struct Report(pub Vec<Finding>);

impl Report {
    pub fn add(&mut self, status: Status, what: &'static str, detail: String, fix: Option<String>) {
        self.0.push(Finding {
            status,
            what,
            detail,
            fix,
        });
    }

    pub fn problems(&self) -> usize {
        self.0.iter().filter(|f| f.status != Status::Ok).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.0 {
            writeln!(f, "{:<8}{:<7}{}", x.status, x.what, x.detail)?;
            if let Some(fix) = &x.fix {
                for line in fix.lines() {
                    writeln!(f, "{:<8}{:<7}{line}", "", "fix:")?;
                }
            }
        }
        match self.problems() {
            0 => writeln!(f, "{} checks, all ok", self.0.len()),
            n => writeln!(f, "{} checks, {n} problem(s)", self.0.len()),
        }
    }
}
