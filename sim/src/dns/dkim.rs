//! The selector records of the server's `[[dkim]]` keys, published in the world's zones
//! the way a postmaster publishes them (`SELECTOR._domainkey.DOMAIN TXT "v=DKIM1; ..."`,
//! RFC 6376 §3.6.2.1), so a remote that verifies finds the key the server signs with.
//!
//! A name the scenario already defines is left alone: a scenario can publish a wrong key,
//! a revoked one (`p=`) or none at a CNAME on purpose.

use std::collections::BTreeMap;

use super::zone::{build_zones, ZoneSpec};

/// Adds one TXT record per `(name, text)` (names lower-case, no trailing dot) to the most
/// specific zone that holds the name, or to a new zone named `zone_for_new` (the signing
/// domain) when none does; skips names that some zone already has a record at. Zone data
/// that does not build is left to the scenario's own validation. Returns the names added.
pub fn publish(
    zones: &mut BTreeMap<String, ZoneSpec>,
    records: &[(String, String, String)],
) -> Vec<String> {
    let Ok(built) = build_zones(zones) else {
        return Vec::new();
    };
    let defined: Vec<String> = built
        .zones
        .iter()
        .flat_map(|z| z.records.iter().map(|r| super::name_to_string(&r.name)))
        .collect();
    let mut added = Vec::new();
    for (name, text, zone_for_new) in records {
        if defined.contains(name) || added.contains(name) {
            continue;
        }
        let holder = zones
            .keys()
            .filter(|k| holds(k, name))
            .max_by_key(|k| normal(k).len())
            .cloned()
            .unwrap_or_else(|| zone_for_new.clone());
        zones
            .entry(holder)
            .or_default()
            .records
            .push(format!("{name}. TXT \"{text}\""));
        added.push(name.clone());
    }
    added
}

fn normal(zone: &str) -> String {
    zone.trim_end_matches('.').to_ascii_lowercase()
}

/// Is `name` at or under zone `zone` (as written in the scenario)?
fn holds(zone: &str, name: &str) -> bool {
    let zone = normal(zone);
    zone.is_empty() || name == zone || name.ends_with(&format!(".{zone}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(toml_text: &str) -> BTreeMap<String, ZoneSpec> {
        #[derive(serde::Deserialize)]
        struct Doc {
            zones: BTreeMap<String, ZoneSpec>,
        }
        toml::from_str::<Doc>(toml_text).unwrap().zones
    }

    fn rec(name: &str, domain: &str) -> (String, String, String) {
        (
            name.into(),
            "v=DKIM1; k=ed25519; p=AAAA".into(),
            domain.into(),
        )
    }

    #[test]
    fn published_in_the_most_specific_zone_or_a_new_one() {
        let mut z = zones(
            r#"
[zones."org"]
records = ["x A 192.0.2.1"]
[zones."Example.org."]
records = ["@ MX 10 mx"]
"#,
        );
        let added = publish(
            &mut z,
            &[
                rec("s1._domainkey.example.org", "example.org"),
                rec("s2._domainkey.other.net", "other.net"),
            ],
        );
        assert_eq!(added.len(), 2);
        assert_eq!(
            z["Example.org."].records[1],
            "s1._domainkey.example.org. TXT \"v=DKIM1; k=ed25519; p=AAAA\""
        );
        assert_eq!(z["org"].records.len(), 1);
        assert_eq!(z["other.net"].records.len(), 1);
        assert!(build_zones(&z).is_ok());
    }

    #[test]
    fn a_name_the_scenario_defines_is_left_alone() {
        let mut z = zones(
            r#"
[zones."example.org"]
records = ["s1._domainkey TXT \"v=DKIM1; p=\""]
"#,
        );
        assert!(publish(&mut z, &[rec("s1._domainkey.example.org", "example.org")]).is_empty());
        assert_eq!(z["example.org"].records.len(), 1);
        // Publishing twice adds nothing the second time.
        let mut z = BTreeMap::new();
        let r = [rec("s._domainkey.a.example", "a.example")];
        assert_eq!(publish(&mut z, &r).len(), 1);
        assert!(publish(&mut z, &r).is_empty());
    }
}
