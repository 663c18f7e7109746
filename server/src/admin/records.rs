//! `dns DOMAIN`: the records a domain needs before its mail is accepted elsewhere, in
//! zone-file syntax ready to paste: MX (RFC 5321 §5), SPF (RFC 7208), one DKIM TXT per
//! configured selector (RFC 6376 §3.6.1), DMARC (RFC 7489), and the PTR our address needs
//! (receivers such as Gmail refuse mail from an IP without matching forward and reverse DNS).

use std::fmt::Write;
use std::net::IpAddr;

use crate::config::ServerConfig;

/// The addresses the configured listeners bind that the world can reach (not loopback, not
/// the unspecified address). Empty when the config only says "wherever I am".
pub fn listen_addresses(config: &ServerConfig) -> Vec<IpAddr> {
    let l = &config.listen;
    let mut ips: Vec<IpAddr> = [Some(l.smtp), l.submission, l.submissions]
        .into_iter()
        .flatten()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// A fully qualified zone-file name.
pub fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

/// One TXT record line; text over 255 octets is split into several character-strings
/// (RFC 1035 §3.3.14), which readers concatenate (RFC 7208 §3.3, RFC 6376 §3.6.2.2).
pub fn txt_line(name: &str, text: &str) -> String {
    let chunks: Vec<String> = text
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("{} 3600 IN TXT {}", fqdn(name), chunks.join(" "))
}

/// The SPF policy we advise: our MX hosts and A, plus the listen addresses when known.
pub fn spf_text(ips: &[IpAddr]) -> String {
    let mut s = "v=spf1 mx a".to_string();
    for ip in ips {
        match ip {
            IpAddr::V4(v4) => {
                let _ = write!(s, " ip4:{v4}");
            }
            IpAddr::V6(v6) => {
                let _ = write!(s, " ip6:{v6}");
            }
        }
    }
    s.push_str(" -all");
    s
}

pub fn dmarc_text(domain: &str) -> String {
    format!("v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}")
}

/// `1.2.0.192.in-addr.arpa` / nibble form under `ip6.arpa` (RFC 1035 §3.5, RFC 3596 §2.5).
pub fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                let _ = write!(s, "{:x}.{:x}.", b & 0xf, b >> 4);
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// The domain must be one of ours.
pub fn local_domain(config: &ServerConfig, domain: &str) -> Result<String, String> {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    if config.domains.iter().any(|x| x.eq_ignore_ascii_case(&d)) {
        Ok(d)
    } else {
        Err(format!(
            "{d} is not one of our domains ({})",
            config.domains.join(", ")
        ))
    }
}

/// The whole `dns` output.
pub fn dns(config: &ServerConfig, domain: &str) -> Result<String, String> {
    let domain = local_domain(config, domain)?;
    let host = config.hostname.trim_end_matches('.').to_ascii_lowercase();
    let ips = listen_addresses(config);
    let mut out = String::new();
    let _ = writeln!(out, "; DNS records for {domain} (zone-file syntax)");
    let _ = writeln!(out, "{} 3600 IN MX 10 {}", fqdn(&domain), fqdn(&host));
    for ip in &ips {
        let kind = if ip.is_ipv4() { "A" } else { "AAAA" };
        let _ = writeln!(out, "{} 3600 IN {kind} {ip}", fqdn(&host));
    }
    if ips.is_empty() {
        let _ = writeln!(
            out,
            "; {} needs an A (and/or AAAA) record with this server's public address",
            fqdn(&host)
        );
        let _ = writeln!(
            out,
            "; SPF: the listeners bind loopback/any address; `mx a` covers this server once the\n; MX host's A/AAAA record is its public address (or add ip4:/ip6: by hand)"
        );
    }
    let _ = writeln!(out, "{}", txt_line(&domain, &spf_text(&ips)));
    let keys: Vec<_> = config
        .dkim
        .iter()
        .filter(|k| k.domain.eq_ignore_ascii_case(&domain))
        .collect();
    if keys.is_empty() {
        let _ = writeln!(
            out,
            "; no DKIM key for {domain}: `mailsim admin dkim-keygen {domain} SELECTOR` makes one"
        );
    }
    for k in keys {
        let public = super::dkim::configured_public(k)?;
        let name = format!("{}._domainkey.{domain}", k.selector);
        let _ = writeln!(out, "{}", txt_line(&name, &public.txt()));
    }
    let _ = writeln!(
        out,
        "{}",
        txt_line(&format!("_dmarc.{domain}"), &dmarc_text(&domain))
    );
    if ips.is_empty() {
        let _ = writeln!(
            out,
            "; PTR: the public IP this server sends from must have a PTR record naming {host}.\n; (in the reverse zone of whoever owns that IP), e.g. for 192.0.2.1:\n; 1.2.0.192.in-addr.arpa. 3600 IN PTR {}",
            fqdn(&host)
        );
    }
    for ip in &ips {
        let _ = writeln!(
            out,
            "; PTR, in the reverse zone of whoever owns {ip}:\n{} 3600 IN PTR {}",
            fqdn(&reverse_name(*ip)),
            fqdn(&host)
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("192.0.2.1".parse().unwrap()),
            "1.2.0.192.in-addr.arpa"
        );
        let v6 = reverse_name("2001:db8::1".parse().unwrap());
        assert!(v6.starts_with("1.0.0.0.0.0.0.0."), "{v6}");
        assert!(v6.ends_with(".8.b.d.0.1.0.0.2.ip6.arpa"), "{v6}");
    }

    #[test]
    fn long_txt_is_split_into_character_strings() {
        let text = "x".repeat(300);
        let line = txt_line("s._domainkey.example.org", &text);
        assert_eq!(
            line,
            format!(
                "s._domainkey.example.org. 3600 IN TXT \"{}\" \"{}\"",
                "x".repeat(255),
                "x".repeat(45)
            )
        );
    }

    #[test]
    fn spf_names_the_listen_addresses() {
        let ips = ["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        assert_eq!(
            spf_text(&ips),
            "v=spf1 mx a ip4:192.0.2.1 ip6:2001:db8::1 -all"
        );
        assert_eq!(spf_text(&[]), "v=spf1 mx a -all");
    }
}
