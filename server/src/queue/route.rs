//! Routing (RFC 5321 §5): where mail for a domain goes.
//!
//! MX records sorted by preference, equal preferences shuffled with the Env's (seeded) RNG;
//! no MX → the domain's own A/AAAA (implicit MX); null MX `0 .` (RFC 7505) → permanent
//! 5.1.10; NXDOMAIN → permanent 5.1.2; SERVFAIL/timeout → temporary. MX names without
//! addresses are skipped. An MX that is ourselves is a loop (5.4.6), unless a more preferred
//! MX exists, in which case we only use the ones preferred over us (§5.1).

use std::net::IpAddr;

use crate::env::{lookup_ips, DnsError, Env, Record, RecordKind};
use crate::mail::address::literal_ip;

/// One hop to try: an MX host and its addresses, in the order to try them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    pub host: String,
    pub preference: u16,
    pub addrs: Vec<IpAddr>,
}

/// Why a domain has no usable route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Try again later (DNS trouble, or no MX host resolves right now).
    Temporary(String),
    /// Give up: bounce with this status and text.
    Permanent {
        status: (u8, u16, u16),
        text: String,
    },
}

impl RouteError {
    fn permanent(status: (u8, u16, u16), text: impl Into<String>) -> Self {
        RouteError::Permanent {
            status,
            text: text.into(),
        }
    }
}

/// Who we are, so an MX pointing back at us is recognised as a loop.
#[derive(Clone, Debug, Default)]
pub struct Myself {
    pub hostname: String,
    pub addrs: Vec<IpAddr>,
}

impl Myself {
    fn is_me(&self, host: &str, addrs: &[IpAddr]) -> bool {
        host.eq_ignore_ascii_case(&self.hostname) || addrs.iter().any(|a| self.addrs.contains(a))
    }
}

/// Which hosts to look up for a domain, decided from its MX answer alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MxPlan {
    /// No MX records: the domain itself is the mail host (implicit MX, RFC 5321 §5.1).
    Implicit(String),
    /// MX hosts with their preferences, most preferred first, equal preferences shuffled.
    Mx(Vec<(u16, String)>),
}

/// The pure part of routing: an MX answer → the hosts to try in order, or why there are none
/// (null MX, NXDOMAIN, a temporary failure). `random` breaks ties between equal preferences;
/// pass the Env's RNG (seeded in the sim). [`resolve`] uses it, and so do the simulator's
/// sender actors, so both pick MX hosts by the same rules.
pub fn plan_mx(
    domain: &str,
    answer: Result<Vec<Record>, DnsError>,
    random: impl FnMut() -> u64,
) -> Result<MxPlan, RouteError> {
    let mut mxs: Vec<(u16, String)> = match answer {
        Ok(records) => records
            .into_iter()
            .filter_map(|r| match r {
                Record::Mx {
                    preference,
                    exchange,
                } => Some((preference, exchange)),
                _ => None,
            })
            .collect(),
        Err(DnsError::NoRecords) => Vec::new(),
        Err(DnsError::NxDomain) => {
            return Err(RouteError::permanent(
                (5, 1, 2),
                format!("Host or domain name not found: {domain} (NXDOMAIN)"),
            ))
        }
        Err(DnsError::Temporary(why)) => {
            return Err(RouteError::Temporary(format!(
                "MX lookup for {domain}: {why}"
            )))
        }
    };
    if mxs.is_empty() {
        return Ok(MxPlan::Implicit(domain.to_string()));
    }
    if mxs.iter().any(|(_, x)| x.is_empty() || x == ".") {
        // RFC 7505: a null MX says the domain accepts no mail.
        return Err(RouteError::permanent(
            (5, 1, 10),
            format!("Recipient address has null MX: {domain} accepts no mail"),
        ));
    }
    mxs.sort();
    shuffle_equal_preferences(random, &mut mxs);
    Ok(MxPlan::Mx(mxs))
}

/// Resolves the hops for `domain`, most preferred first. An address literal
/// (`user@[203.0.113.5]`, which only a client allowed to relay can have queued) is its own
/// single hop: RFC 5321 §5.1 looks up MX records for domain names only, and a literal names
/// the host outright. A literal of our own address is the loop it would be as an MX.
pub async fn resolve<E: Env>(env: &E, domain: &str, me: &Myself) -> Result<Vec<Hop>, RouteError> {
    if let Some(ip) = literal_ip(domain) {
        if me.addrs.contains(&ip) {
            return Err(loop_error(domain));
        }
        return Ok(vec![Hop {
            host: domain.to_string(),
            preference: 0,
            addrs: vec![ip],
        }]);
    }
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let answer = env.lookup(&domain, RecordKind::Mx).await;
    let mxs = match plan_mx(&domain, answer, || env.random_u64())? {
        MxPlan::Mx(mxs) => mxs,
        MxPlan::Implicit(domain) => {
            // Implicit MX (§5.1): the domain itself, at preference 0.
            return match lookup_ips(env, &domain).await {
                Ok(addrs) if me.is_me(&domain, &addrs) => Err(loop_error(&domain)),
                Ok(addrs) => Ok(vec![Hop {
                    host: domain,
                    preference: 0,
                    addrs,
                }]),
                Err(DnsError::NxDomain) | Err(DnsError::NoRecords) => Err(RouteError::permanent(
                    (5, 1, 2),
                    format!("Host or domain name not found: {domain} has no MX and no address"),
                )),
                Err(DnsError::Temporary(why)) => Err(RouteError::Temporary(format!(
                    "address lookup for {domain}: {why}"
                ))),
            };
        }
    };
    let mut hops = Vec::new();
    let mut temporary = None;
    for (preference, host) in mxs {
        match lookup_ips(env, &host).await {
            Ok(addrs) => {
                if me.is_me(&host, &addrs) {
                    // Only MX hosts preferred over us may be used (§5.1); none → a loop.
                    if hops.is_empty() {
                        return Err(loop_error(&domain));
                    }
                    break;
                }
                hops.push(Hop {
                    host,
                    preference,
                    addrs,
                });
            }
            Err(DnsError::Temporary(why)) => {
                temporary.get_or_insert(format!("address lookup for MX {host}: {why}"));
            }
            // An MX name without addresses is skipped.
            Err(_) => {}
        }
    }
    if hops.is_empty() {
        return Err(RouteError::Temporary(temporary.unwrap_or_else(|| {
            format!("no MX host of {domain} has an address")
        })));
    }
    Ok(hops)
}

fn loop_error(domain: &str) -> RouteError {
    RouteError::permanent((5, 4, 6), format!("mail for {domain} loops back to myself"))
}

/// Fisher–Yates within each run of equal preference, with the Env's RNG (seeded in the sim,
/// so the order is part of the deterministic trace).
fn shuffle_equal_preferences(mut random: impl FnMut() -> u64, mxs: &mut [(u16, String)]) {
    let mut start = 0;
    while start < mxs.len() {
        let pref = mxs[start].0;
        let end = start + mxs[start..].iter().take_while(|(p, _)| *p == pref).count();
        for i in (start + 1..end).rev() {
            let j = start + (random() % (i - start + 1) as u64) as usize;
            mxs.swap(i, j);
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::env::fake::FakeEnv;

    fn mx(p: u16, x: &str) -> Record {
        Record::Mx {
            preference: p,
            exchange: x.into(),
        }
    }

    fn a(last: u8) -> Record {
        Record::A(Ipv4Addr::new(203, 0, 113, last))
    }

    fn me() -> Myself {
        Myself {
            hostname: "mx.example.org".into(),
            addrs: vec!["192.0.2.1".parse().unwrap()],
        }
    }

    async fn route(env: &FakeEnv, domain: &str) -> Result<Vec<(String, Vec<IpAddr>)>, RouteError> {
        resolve(env, domain, &me())
            .await
            .map(|hops| hops.into_iter().map(|h| (h.host, h.addrs)).collect())
    }

    #[tokio::test]
    async fn mx_in_preference_order_skipping_hosts_without_addresses() {
        let env = FakeEnv::new();
        env.answer(
            "other.net",
            RecordKind::Mx,
            Ok(vec![
                mx(20, "mx2.other.net"),
                mx(10, "mx1.other.net"),
                mx(30, "gone.other.net"),
            ]),
        )
        .answer("mx1.other.net", RecordKind::A, Ok(vec![a(1)]))
        .answer("mx2.other.net", RecordKind::A, Ok(vec![a(2), a(3)]))
        .answer("gone.other.net", RecordKind::A, Err(DnsError::NoRecords));
        let hops = route(&env, "Other.NET.").await.unwrap();
        let hosts: Vec<&str> = hops.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(hosts, ["mx1.other.net", "mx2.other.net"]);
        assert_eq!(hops[1].1.len(), 2);
    }

    #[tokio::test]
    async fn equal_preferences_are_shuffled_deterministically() {
        let env = FakeEnv::new();
        let names: Vec<String> = (0..6).map(|i| format!("mx{i}.other.net")).collect();
        env.answer(
            "other.net",
            RecordKind::Mx,
            Ok(names.iter().map(|n| mx(10, n)).collect()),
        );
        for (i, n) in names.iter().enumerate() {
            env.answer(n, RecordKind::A, Ok(vec![a(i as u8)]));
        }
        let first: Vec<String> = route(&env, "other.net")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.0)
            .collect();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, names, "same hosts");
        assert_ne!(first, names, "shuffled (with this RNG sequence)");
        let again = FakeEnv::new();
        again.answer(
            "other.net",
            RecordKind::Mx,
            Ok(names.iter().map(|n| mx(10, n)).collect()),
        );
        for (i, n) in names.iter().enumerate() {
            again.answer(n, RecordKind::A, Ok(vec![a(i as u8)]));
        }
        let second: Vec<String> = route(&again, "other.net")
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.0)
            .collect();
        assert_eq!(first, second, "same RNG, same order");
    }

    /// No DNS answer is scripted: an MX lookup would end in an error, not in a hop.
    #[tokio::test]
    async fn an_address_literal_is_its_own_hop_without_dns() {
        let env = FakeEnv::new();
        assert_eq!(
            route(&env, "[203.0.113.5]").await.unwrap(),
            [(
                "[203.0.113.5]".to_string(),
                vec![IpAddr::from([203, 0, 113, 5])]
            )]
        );
        let v6 = route(&env, "[IPv6:2001:db8::7]").await.unwrap();
        assert_eq!(v6[0].1, ["2001:db8::7".parse::<IpAddr>().unwrap()]);
        assert!(matches!(
            route(&env, "[192.0.2.1]").await,
            Err(RouteError::Permanent {
                status: (5, 4, 6),
                ..
            })
        ));
    }

    #[tokio::test]
    async fn implicit_mx_null_mx_nxdomain_and_temporary() {
        let env = FakeEnv::new();
        env.answer("plain.net", RecordKind::Mx, Err(DnsError::NoRecords))
            .answer("plain.net", RecordKind::A, Ok(vec![a(9)]))
            .answer("nomail.net", RecordKind::Mx, Ok(vec![mx(0, "")]))
            .answer(
                "flaky.net",
                RecordKind::Mx,
                Err(DnsError::Temporary("SERVFAIL".into())),
            );
        assert_eq!(route(&env, "plain.net").await.unwrap()[0].0, "plain.net");
        assert!(matches!(
            route(&env, "nomail.net").await,
            Err(RouteError::Permanent {
                status: (5, 1, 10),
                ..
            })
        ));
        assert!(matches!(
            route(&env, "nowhere.net").await,
            Err(RouteError::Permanent {
                status: (5, 1, 2),
                ..
            })
        ));
        assert!(matches!(
            route(&env, "flaky.net").await,
            Err(RouteError::Temporary(_))
        ));
    }

    #[tokio::test]
    async fn an_mx_that_is_ourselves_is_a_loop_unless_a_better_one_exists() {
        let env = FakeEnv::new();
        env.answer(
            "loop.net",
            RecordKind::Mx,
            Ok(vec![mx(10, "mx.example.org")]),
        )
        .answer(
            "mx.example.org",
            RecordKind::A,
            Ok(vec![Record::A(Ipv4Addr::new(192, 0, 2, 1))]),
        )
        .answer(
            "backup.net",
            RecordKind::Mx,
            Ok(vec![mx(10, "primary.backup.net"), mx(20, "mx.example.org")]),
        )
        .answer("primary.backup.net", RecordKind::A, Ok(vec![a(5)]));
        assert!(matches!(
            route(&env, "loop.net").await,
            Err(RouteError::Permanent {
                status: (5, 4, 6),
                ..
            })
        ));
        let hops = route(&env, "backup.net").await.unwrap();
        assert_eq!(hops.len(), 1);
        assert_eq!(hops[0].0, "primary.backup.net");
    }

    /// The pure part, as the sim's actors call it: order from the answer alone, ties broken
    /// only by the RNG it is given.
    #[test]
    fn plan_mx_orders_by_preference_and_breaks_ties_with_the_given_rng() {
        let answer = || Ok(vec![mx(20, "b"), mx(10, "c"), mx(20, "a"), mx(5, "d")]);
        let plan = |n: u64| {
            let mut n = n;
            match plan_mx("x.net", answer(), move || {
                n += 1;
                n
            }) {
                Ok(MxPlan::Mx(mxs)) => mxs,
                other => panic!("{other:?}"),
            }
        };
        let first = plan(0);
        let prefs: Vec<u16> = first.iter().map(|m| m.0).collect();
        assert_eq!(prefs, [5, 10, 20, 20]);
        assert_ne!(
            first,
            plan(1),
            "another RNG stream, another order among equals"
        );
        assert_eq!(first, plan(0), "the same stream, the same order");
        assert_eq!(
            plan_mx("x.net", Err(DnsError::NoRecords), || 0),
            Ok(MxPlan::Implicit("x.net".into()))
        );
        assert!(matches!(
            plan_mx("x.net", Ok(vec![mx(10, "a"), mx(0, ".")]), || 0),
            Err(RouteError::Permanent {
                status: (5, 1, 10),
                ..
            })
        ));
    }
}
