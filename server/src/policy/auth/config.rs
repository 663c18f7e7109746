//! `[sender_auth]`: what the MX does with SPF, DKIM and DMARC results (issue #10 item 3).
//!
//! ```toml
//! [sender_auth]
//! spf_fail = "mark"      # SPF fail when the author domain has no DMARC policy:
//!                        # "reject" (550 5.7.23), "junk", or "mark" (headers only)
//! temperror = "accept"   # a DNS failure during SPF or DMARC: "accept" or "defer" (451)
//! dmarc = "enforce"      # "enforce" p=reject/quarantine, or "monitor" (headers only)
//! iprev = true           # reverse DNS of the client (iprev, RFC 8601 §3)
//!
//! [sender_auth.domains."example.org"]   # for mail to one of our domains
//! spf_fail = "reject"
//! ```
//!
//! The defaults are what OpenDMARC and policyd-spf do out of the box with Postfix: DMARC's
//! policy is the domain owner's and is applied; an SPF fail on its own only marks (forwarded
//! mail fails SPF all the time, RFC 7208 Appendix D); a DNS failure never bounces mail.
//! The SPF and DMARC results always go into `Authentication-Results` and `Received-SPF`,
//! whatever the actions (item 2), so "mark" is also what "do nothing" would be.
//!
//! A message to several of our domains gets the strictest of their settings: there is one
//! reply to the end of data, and a recipient whose domain rejects forged mail must not get
//! it because another recipient's domain would have accepted it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What to do with an SPF `fail` that no DMARC policy covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfFailAction {
    /// Deliver, with the results in the headers.
    #[default]
    Mark,
    /// Deliver to the recipients' Junk folders.
    Junk,
    /// 550 5.7.23 at the end of data (RFC 7372), with the domain's explanation.
    Reject,
}

/// What to do when a DNS failure left SPF or DMARC undecided (`temperror`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TempErrorAction {
    #[default]
    Accept,
    /// 451 4.7.24 (SPF) or 451 4.7.1 (DMARC): the client retries later.
    Defer,
}

/// Whether a DMARC `p=reject` / `p=quarantine` is applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmarcAction {
    /// Results in the headers only.
    Monitor,
    /// Reject (550 5.7.1) or file in Junk as the domain's policy (and `pct`) says.
    #[default]
    Enforce,
}

/// The settings of one recipient domain; a missing key takes `[sender_auth]`'s.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainActions {
    #[serde(default)]
    pub spf_fail: Option<SpfFailAction>,
    #[serde(default)]
    pub temperror: Option<TempErrorAction>,
    #[serde(default)]
    pub dmarc: Option<DmarcAction>,
}

/// `[sender_auth]`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SenderAuthConfig {
    /// `false` turns every check off (the section can stay in the file).
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub spf_fail: SpfFailAction,
    #[serde(default)]
    pub temperror: TempErrorAction,
    #[serde(default)]
    pub dmarc: DmarcAction,
    #[serde(default = "yes")]
    pub iprev: bool,
    /// Per recipient domain (lower case), for mail to that domain.
    #[serde(default)]
    pub domains: BTreeMap<String, DomainActions>,
}

fn yes() -> bool {
    true
}

/// The actions that apply to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actions {
    pub spf_fail: SpfFailAction,
    pub temperror: TempErrorAction,
    pub dmarc: DmarcAction,
}

impl SenderAuthConfig {
    /// The strictest actions over the recipients' domains (see the module doc).
    pub fn actions<'a>(&self, recipient_domains: impl IntoIterator<Item = &'a str>) -> Actions {
        let mut a = Actions {
            spf_fail: self.spf_fail,
            temperror: self.temperror,
            dmarc: self.dmarc,
        };
        let mut any = false;
        let mut strictest = Actions {
            spf_fail: SpfFailAction::Mark,
            temperror: TempErrorAction::Accept,
            dmarc: DmarcAction::Monitor,
        };
        for d in recipient_domains {
            any = true;
            let own = self.domains.get(&d.to_ascii_lowercase());
            let spf = own.and_then(|o| o.spf_fail).unwrap_or(self.spf_fail);
            let temp = own.and_then(|o| o.temperror).unwrap_or(self.temperror);
            let dmarc = own.and_then(|o| o.dmarc).unwrap_or(self.dmarc);
            strictest.spf_fail = strictest.spf_fail.max(spf);
            strictest.temperror = strictest.temperror.max(temp);
            strictest.dmarc = strictest.dmarc.max(dmarc);
        }
        if any {
            a = strictest;
        }
        a
    }

    /// Domain keys must be domain names. The error is `(key path, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for d in self.domains.keys() {
            if !super::spf::valid_domain(d) {
                return Err((
                    format!("sender_auth.domains.{d}"),
                    format!("sender_auth.domains: {d:?} is not a domain name"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strictest_recipient_domain_wins() {
        let cfg: SenderAuthConfig = toml::from_str(
            "spf_fail = \"mark\"\n[domains.\"a.example\"]\nspf_fail = \"reject\"\n\
             [domains.\"b.example\"]\ndmarc = \"monitor\"\ntemperror = \"defer\"\n",
        )
        .unwrap();
        let a = cfg.actions(["b.example"]);
        assert_eq!(
            (a.spf_fail, a.temperror, a.dmarc),
            (
                SpfFailAction::Mark,
                TempErrorAction::Defer,
                DmarcAction::Monitor
            )
        );
        let both = cfg.actions(["b.example", "A.example"]);
        assert_eq!(
            (both.spf_fail, both.temperror, both.dmarc),
            (
                SpfFailAction::Reject,
                TempErrorAction::Defer,
                DmarcAction::Enforce
            )
        );
        let none = cfg.actions([]);
        assert_eq!(none.spf_fail, SpfFailAction::Mark);
    }
}
