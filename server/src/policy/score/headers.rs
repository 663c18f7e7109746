//! `X-Spam-Score` and `X-Spam-Status` as SpamAssassin writes them (its default
//! `add_header all Status "_YESNO_, score=_SCORE_ required=_REQD_ tests=_TESTS_
//! autolearn=_AUTOLEARN_"`): scores with one decimal, the rules comma-separated in name
//! order (`none` when none fired), folded before 78 characters (RFC 5322 §2.1.1) with a
//! tab, breaking after a comma in the rule list as SpamAssassin does. `autolearn=disabled`:
//! there is no learner here, and that is SpamAssassin's word for it.

use super::{Score, ScoreConfig};

/// RFC 5322 §2.1.1: lines SHOULD be at most 78 characters.
const WIDTH: usize = 78;

/// `x` with one decimal; never `-0.0`.
pub fn one_decimal(x: f64) -> String {
    let r = (x * 10.0).round() / 10.0;
    if r == 0.0 {
        "0.0".to_string()
    } else {
        format!("{r:.1}")
    }
}

impl Score {
    /// The two header fields, each ending in CRLF, to put above our `Received:`.
    pub fn headers(&self, cfg: &ScoreConfig) -> String {
        let total = one_decimal(self.total);
        let yes = if self.total >= cfg.junk {
            "Yes,"
        } else {
            "No,"
        };
        let mut pieces: Vec<(bool, String)> = vec![
            (true, yes.to_string()),
            (true, format!("score={total}")),
            (true, format!("required={}", one_decimal(cfg.junk))),
        ];
        if self.hits.is_empty() {
            pieces.push((true, "tests=none".to_string()));
        } else {
            let n = self.hits.len();
            for (i, h) in self.hits.iter().enumerate() {
                let comma = if i + 1 < n { "," } else { "" };
                let piece = if i == 0 {
                    format!("tests={}{comma}", h.rule)
                } else {
                    format!("{}{comma}", h.rule)
                };
                pieces.push((i == 0, piece));
            }
        }
        pieces.push((true, "autolearn=disabled".to_string()));
        format!(
            "X-Spam-Score: {total}\r\n{}",
            fold("X-Spam-Status:", &pieces)
        )
    }
}

/// `name` then the pieces, each after a space when its flag says so (else glued to the
/// previous one); a piece that would pass [`WIDTH`] starts a new line with a tab instead.
fn fold(name: &str, pieces: &[(bool, String)]) -> String {
    let mut out = String::from(name);
    let mut line = name.len();
    for (spaced, piece) in pieces {
        let sep = usize::from(*spaced);
        if line + sep + piece.len() > WIDTH {
            out.push_str("\r\n\t");
            line = 1;
        } else if *spaced {
            out.push(' ');
            line += 1;
        }
        out.push_str(piece);
        line += piece.len();
    }
    out.push_str("\r\n");
    out
}
