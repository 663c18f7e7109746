//! Relaying: only clients from relay_networks (or authenticated ones, see `auth.rs`) may
//! send to foreign domains.

use super::*;

fn relay_config(networks: &str) -> Arc<SessionConfig> {
    let cfg: ServerConfig = toml::from_str(&format!(
        r#"
        hostname = "mx.example.org"
        domains = ["example.org"]
        accounts = ["alice@example.org"]
        relay_networks = [{networks}]
        [aliases]
        "fwd@example.org" = ["alice@example.org", "carol@elsewhere.net"]
        "#
    ))
    .unwrap();
    config_from(cfg, |_| {})
}

fn relay_transaction(client: &mut Client) -> Vec<String> {
    let mut replies = client.send("EHLO c.test\r\n");
    replies.extend(client.send(
        "MAIL FROM:<a@c.test>\r\nRCPT TO:<x@elsewhere.net>\r\nRCPT TO:<fwd@example.org>\r\nRCPT TO:<carol@elsewhere.net>\r\nDATA\r\n",
    ));
    replies.extend(client.send("Subject: r\r\n\r\nbody\r\n.\r\n"));
    replies
}

#[test]
fn relay_network_client_may_send_to_foreign_domains() {
    // peer() is 192.0.2.1
    let mut c = Client::on(relay_config(r#""192.0.2.0/24""#));
    let replies = relay_transaction(&mut c);
    assert!(
        replies
            .iter()
            .any(|r| r.starts_with("250 2.0.0 Ok: queued")),
        "{replies:?}"
    );
    let tx = &c.delivered[0];
    let remote: Vec<String> = tx
        .envelope
        .remote_recipients()
        .iter()
        .map(|a| a.to_string())
        .collect();
    // x@ as given, carol@ once although reached twice (alias target and direct recipient).
    assert_eq!(remote, ["x@elsewhere.net", "carol@elsewhere.net"]);
    assert_eq!(tx.envelope.mailboxes(), ["alice@example.org"]);
}

#[test]
fn outside_relay_networks_foreign_domains_are_refused_but_aliases_still_forward() {
    let mut c = Client::on(relay_config(r#""203.0.113.0/24""#));
    let replies = relay_transaction(&mut c);
    assert_eq!(
        replies
            .iter()
            .filter(|r| r.starts_with("554 5.7.1"))
            .count(),
        2,
        "x@ and carol@ refused: {replies:?}"
    );
    let tx = &c.delivered[0];
    let remote: Vec<String> = tx
        .envelope
        .remote_recipients()
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(
        remote,
        ["carol@elsewhere.net"],
        "the alias's own forward target"
    );
}
