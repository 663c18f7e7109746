//! Sender authentication at the end of data: SPF (RFC 7208) for the HELO and MAIL FROM
//! identities, DKIM (RFC 6376), DMARC (RFC 7489, with mail-auth's RFC 9989 tree walk) and
//! iprev (RFC 8601 §3), their results written as `Authentication-Results` (RFC 8601) and
//! `Received-SPF` (RFC 7208 §9.1), and the `[sender_auth]` actions applied
//! ([`config`]).
//!
//! Every DNS answer comes through the [`Env`]: SPF by our own `check_host()` ([`spf`]),
//! DKIM keys and DMARC records through a mail-auth cache the Env fills ([`txt`]).
//!
//! Clients that are ours skip it all (issue #10 item 3): an authenticated submission, a
//! client in `relay_networks`. Their mail is signed, not judged.
//!
//! Known edges: mail-auth compares a DKIM signature's `x=` with the real clock (our own
//! signatures never set it), and the DMARC `pct=` tag (RFC 7489 §6.3, gone from DMARCbis
//! and so from mail-auth) is applied here, sampled with the Env's random numbers.

pub mod config;
pub mod spf;
mod txt;

use std::net::IpAddr;

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy as DmarcPolicy;
use mail_auth::hickory_resolver::config::ResolverConfig;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcResult, IprevOutput,
    IprevResult, MessageAuthenticator, Parameters, ReceivedSpf, SpfResult,
};

use self::config::{DmarcAction, SenderAuthConfig, SpfFailAction, TempErrorAction};
use self::spf::{canonical, reverse_name, SpfQuery};
use self::txt::TxtAnswers;
use super::{Client, IpNet, Marks, Refusal, Verdict};
use crate::env::{DnsError, Env, Record, RecordKind};
use crate::mail::{Envelope, Folder};

/// Rounds of "verify, fetch what was missing" before the verdict stands as it is (a DMARC
/// tree walk of a long name and its alignment walks need about eight).
const MAX_ROUNDS: usize = 16;

/// What the checks found, by RFC 8601 result name: for the trace and the content score.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    pub spf_helo: String,
    pub spf: String,
    /// `pass` if any signature verified, else the first signature's result, `none` if
    /// unsigned.
    pub dkim: String,
    pub dmarc: String,
    /// `pass`, `fail`, `temperror`, or empty when not checked.
    pub iprev: String,
}

/// The result of checking one message.
pub struct Checked {
    pub verdict: Verdict,
    pub findings: Findings,
}

/// The MX's sender authentication, built from `[sender_auth]`.
pub struct SenderAuth<E: Env> {
    env: E,
    config: SenderAuthConfig,
    /// Our host name: the authserv-id of our results and `%{r}` in explanations.
    hostname: String,
    /// `relay_networks`: clients that are ours.
    trusted: Vec<IpNet>,
    /// mail-auth's verifier, with a resolver that has no name servers: every lookup it
    /// makes is answered by our cache ([`txt`]).
    verifier: MessageAuthenticator,
}

impl<E: Env> SenderAuth<E> {
    pub fn new(
        env: E,
        config: SenderAuthConfig,
        hostname: &str,
        trusted: Vec<IpNet>,
    ) -> Result<SenderAuth<E>, String> {
        let verifier = MessageAuthenticator::new(
            ResolverConfig::from_parts(None, vec![], vec![]),
            Default::default(),
        )
        .map_err(|e| format!("sender_auth: {e}"))?;
        Ok(SenderAuth {
            env,
            config,
            hostname: hostname.to_string(),
            trusted,
            verifier,
        })
    }

    /// Whether the checks apply to this client at all.
    pub fn applies_to(&self, client: &Client) -> bool {
        let ip = client.remote.ip();
        self.config.enabled
            && client.authenticated.is_none()
            && !self.trusted.iter().any(|n| n.contains(ip))
    }

    /// Checks one message (`message`: all of it, our `Received:` first).
    pub async fn check(&self, client: &Client, envelope: &Envelope, message: &[u8]) -> Checked {
        let ip = canonical(client.remote.ip());
        let helo = envelope.helo.trim_end_matches('.').to_ascii_lowercase();
        let postmaster = format!("postmaster@{helo}");
        let spf_helo = spf::check_host(
            &self.env,
            &SpfQuery {
                ip,
                domain: &helo,
                sender: &postmaster,
                helo: &helo,
                receiver: &self.hostname,
            },
        )
        .await;
        // RFC 7208 §2.4: a null sender is checked as postmaster@<HELO>, which is the HELO
        // check itself.
        let (mail_from, mail_domain, spf_mail) = match &envelope.mail_from {
            Some(a) => {
                let sender = a.to_string();
                let domain = a.domain.trim_end_matches('.').to_ascii_lowercase();
                let out = spf::check_host(
                    &self.env,
                    &SpfQuery {
                        ip,
                        domain: &domain,
                        sender: &sender,
                        helo: &helo,
                        receiver: &self.hostname,
                    },
                )
                .await;
                (sender, domain, out)
            }
            None => (String::new(), helo.clone(), spf_helo.clone()),
        };
        let iprev = match self.config.iprev {
            true => Some(iprev(&self.env, ip).await),
            false => None,
        };

        let parsed = AuthenticatedMessage::parse(message);
        let answers = TxtAnswers::default();
        let (dkim, dmarc) = match &parsed {
            None => (Vec::new(), None),
            Some(parsed) => {
                let mut round = 0;
                loop {
                    round += 1;
                    let dkim = self
                        .verifier
                        .verify_dkim(Parameters::new(parsed).with_txt_cache(&answers))
                        .await;
                    let dmarc = self
                        .verifier
                        .verify_dmarc(
                            Parameters::new(DmarcParameters::new(
                                parsed,
                                &dkim,
                                &mail_domain,
                                &spf_mail,
                            ))
                            .with_txt_cache(&answers),
                        )
                        .await;
                    if round >= MAX_ROUNDS || !answers.fetch_missing(&self.env).await {
                        break (dkim, Some(dmarc));
                    }
                }
            }
        };

        let from_domain = dmarc
            .as_ref()
            .map(|d| d.domain().to_string())
            .unwrap_or_default();
        let mut results = AuthenticationResults::new(&self.hostname)
            .with_dkim_results(&dkim, &from_domain)
            .with_spf_ehlo_result(&spf_helo, ip, &helo)
            .with_spf_mailfrom_result(&spf_mail, ip, &mail_from, &helo);
        if let Some(d) = &dmarc {
            results = results.with_dmarc_result(d);
        }
        if let Some(i) = &iprev {
            results = results.with_iprev_result(i, ip);
        }
        use mail_auth::common::headers::HeaderWriter;
        let mut fields = results.to_header();
        if dkim.is_empty() {
            // RFC 8601 §2.7.1: an unsigned message is `dkim=none`; mail-auth writes
            // nothing for no signatures.
            let at = "Authentication-Results: ".len() + self.hostname.len();
            if fields.get(..at).is_some() {
                fields.insert_str(at, ";\r\n\tdkim=none");
            }
        }
        fields.push_str(
            &ReceivedSpf::new(&spf_mail, ip, &helo, &mail_from, &self.hostname).to_header(),
        );

        let findings = Findings {
            spf_helo: spf_name(spf_helo.result()).into(),
            spf: spf_name(spf_mail.result()).into(),
            dkim: dkim_summary(&dkim).into(),
            dmarc: dmarc
                .as_ref()
                .map_or("none", |d| dmarc_name(&d.result()))
                .into(),
            iprev: iprev.as_ref().map_or("", |i| iprev_name(&i.result)).into(),
        };

        let domains = envelope
            .recipients
            .iter()
            .filter(|r| !r.mailboxes.is_empty() || !r.remote.is_empty())
            .map(|r| r.address.domain.as_str());
        let actions = self.config.actions(domains);
        let mut folder = Folder::Inbox;
        let mut refusal: Option<Verdict> = None;

        // DMARC first: the author domain's own policy (RFC 7489 §6.6.4).
        let dmarc_applies = dmarc.as_ref().is_some_and(|d| d.dmarc_record().is_some());
        if let Some(d) = &dmarc {
            let failed = matches!(d.result(), DmarcResult::Fail(_));
            let temp = matches!(d.result(), DmarcResult::TempError(_));
            let mut policy = d.policy();
            if failed && matches!(policy, DmarcPolicy::Reject | DmarcPolicy::Quarantine) {
                let pct = dmarc_pct(&answers, d.domain());
                if pct < 100 && self.env.random_u64() % 100 >= pct as u64 {
                    // §6.6.4: the messages pct does not select get the next policy down.
                    let lower = match policy {
                        DmarcPolicy::Reject => DmarcPolicy::Quarantine,
                        _ => DmarcPolicy::None,
                    };
                    self.env.trace(
                        "auth",
                        format_args!(
                            "dmarc {} pct={pct}: not sampled, {} instead",
                            d.domain(),
                            policy_name(lower)
                        ),
                    );
                    policy = lower;
                }
            }
            if failed && actions.dmarc == DmarcAction::Enforce {
                match policy {
                    DmarcPolicy::Reject => {
                        refusal = Some(Verdict::Reject(Refusal::new(
                            550,
                            (5, 7, 1),
                            format!("rejected by DMARC policy for {}", d.domain()),
                        )))
                    }
                    DmarcPolicy::Quarantine => folder = Folder::Junk,
                    _ => {}
                }
            }
            if temp && actions.temperror == TempErrorAction::Defer {
                refusal.get_or_insert(Verdict::Defer(Refusal::new(
                    451,
                    (4, 7, 1),
                    format!("temporary DMARC error for {}; try again later", d.domain()),
                )));
            }
        }
        // SPF on its own, when no DMARC policy speaks for the author domain.
        if !dmarc_applies && refusal.is_none() {
            let spf_failed =
                spf_mail.result() == SpfResult::Fail || spf_helo.result() == SpfResult::Fail;
            if spf_failed {
                match actions.spf_fail {
                    SpfFailAction::Reject => {
                        let (identity, out) = match spf_helo.result() == SpfResult::Fail {
                            true => (format!("HELO {helo}"), &spf_helo),
                            false => (format!("MAIL FROM {mail_domain}"), &spf_mail),
                        };
                        let why = out
                            .explanation()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default();
                        refusal = Some(Verdict::Reject(Refusal::new(
                            550,
                            (5, 7, 23),
                            format!("SPF check failed for {identity} from [{ip}]{why}"),
                        )));
                    }
                    SpfFailAction::Junk => folder = Folder::Junk,
                    SpfFailAction::Mark => {}
                }
            }
        }
        if refusal.is_none()
            && spf_mail.result() == SpfResult::TempError
            && actions.temperror == TempErrorAction::Defer
        {
            refusal = Some(Verdict::Defer(Refusal::new(
                451,
                (4, 7, 24),
                format!("temporary SPF error for {mail_domain}; try again later"),
            )));
        }

        self.env.trace(
            "auth",
            format_args!(
                "[{ip}] spf={} (helo {} spf={}) dkim={} dmarc={}{}{}",
                findings.spf,
                if helo.is_empty() { "-" } else { &helo },
                findings.spf_helo,
                findings.dkim,
                findings.dmarc,
                match findings.iprev.is_empty() {
                    true => String::new(),
                    false => format!(" iprev={}", findings.iprev),
                },
                match (&refusal, folder) {
                    (Some(Verdict::Reject(_)), _) => " -> reject",
                    (Some(_), _) => " -> defer",
                    (None, Folder::Junk) => " -> Junk",
                    (None, Folder::Inbox) => "",
                },
            ),
        );
        let verdict = refusal.unwrap_or(Verdict::Mark(Marks {
            fields,
            strip_results_of: Some(self.hostname.clone()),
            folder,
        }));
        Checked { verdict, findings }
    }
}

/// iprev (RFC 8601 §3): the client's PTR names, one of whose addresses is the client.
/// No PTR, or no name that points back: fail; a DNS failure: temperror.
async fn iprev<E: Env>(env: &E, ip: IpAddr) -> IprevOutput {
    let not_found = |code| mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(code));
    let temp = |why: String| mail_auth::Error::Dns(mail_auth::DnsError::Resolver(why));
    let names = match env.lookup(&reverse_name(ip), RecordKind::Ptr).await {
        Ok(records) => records
            .into_iter()
            .filter_map(|r| match r {
                Record::Ptr(p) => Some(p.trim_end_matches('.').to_ascii_lowercase()),
                _ => None,
            })
            .collect::<Vec<_>>(),
        Err(DnsError::Temporary(why)) => {
            return IprevOutput {
                result: IprevResult::TempError(temp(why)),
                ptr: None,
            }
        }
        Err(_) => {
            return IprevOutput {
                result: IprevResult::Fail(not_found(ResponseCode::NXDomain)),
                ptr: None,
            }
        }
    };
    let kind = match ip {
        IpAddr::V4(_) => RecordKind::A,
        IpAddr::V6(_) => RecordKind::Aaaa,
    };
    let mut last = IprevResult::Fail(not_found(ResponseCode::NoError));
    // Like mail-auth's own iprev: the first two names.
    for name in names.iter().take(2) {
        match env.lookup(name, kind).await {
            Ok(addrs) => {
                if addrs.iter().any(|a| match a {
                    Record::A(a) => IpAddr::V4(*a) == ip,
                    Record::Aaaa(a) => IpAddr::V6(*a) == ip,
                    _ => false,
                }) {
                    return IprevOutput {
                        result: IprevResult::Pass,
                        ptr: Some(names.iter().map(|n| n.as_str().into()).collect()),
                    };
                }
            }
            Err(DnsError::Temporary(why)) => last = IprevResult::TempError(temp(why)),
            Err(_) => {}
        }
    }
    IprevOutput {
        result: last,
        ptr: None,
    }
}

/// The `pct=` of the DMARC record that applies to `from_domain`: the most specific
/// `_dmarc.` record fetched for it (the author domain's, else its organisation's). Missing
/// or invalid: 100 (RFC 7489 §6.3).
fn dmarc_pct(answers: &TxtAnswers, from_domain: &str) -> u8 {
    let from = from_domain.trim_end_matches('.').to_ascii_lowercase();
    let mut suffix = from.as_str();
    loop {
        if let Some(texts) = answers.raw(&format!("_dmarc.{suffix}")) {
            if let Some(record) = txt::the_dmarc_record(&texts) {
                return record
                    .split(';')
                    .filter_map(|tag| tag.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("pct"))
                    .and_then(|(_, v)| v.trim().parse::<u8>().ok())
                    .filter(|p| *p <= 100)
                    .unwrap_or(100);
            }
        }
        match suffix.split_once('.') {
            Some((_, rest)) if !rest.is_empty() => suffix = rest,
            _ => return 100,
        }
    }
}

pub fn spf_name(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

/// RFC 8601 §2.7.1's name of a DKIM result.
pub fn dkim_name(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Fail(_) => "fail",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn dkim_summary(outputs: &[DkimOutput<'_>]) -> &'static str {
    if outputs.iter().any(|o| *o.result() == DkimResult::Pass) {
        return "pass";
    }
    outputs.first().map_or("none", |o| dkim_name(o.result()))
}

fn dmarc_name(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

fn iprev_name(r: &IprevResult) -> &'static str {
    match r {
        IprevResult::Pass => "pass",
        IprevResult::Fail(_) => "fail",
        IprevResult::TempError(_) => "temperror",
        IprevResult::PermError(_) => "permerror",
        IprevResult::None => "none",
    }
}

fn policy_name(p: DmarcPolicy) -> &'static str {
    match p {
        DmarcPolicy::Reject => "reject",
        DmarcPolicy::Quarantine => "quarantine",
        DmarcPolicy::None | DmarcPolicy::Unspecified => "none",
    }
}
