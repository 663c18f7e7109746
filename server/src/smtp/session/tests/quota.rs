//! The RCPT-time refusals of `session/quota.rs`: a list's posting policy, a full mailbox.

use super::*;

/// A list's posting policy and a full mailbox, both refused at RCPT (`session/quota.rs`).
#[test]
fn members_only_list_and_full_mailbox_are_refused_at_rcpt() {
    let cfg: ServerConfig = toml::from_str(
        r#"
        hostname = "mx.example.org"
        domains = ["example.org"]
        accounts = ["alice@example.org", "bob@example.org"]
        [[lists]]
        address = "staff@example.org"
        members = ["alice@example.org"]
        policy = "members"
        "#,
    )
    .unwrap();
    let quotas = crate::store::Quotas::new(
        crate::store::Limit {
            bytes: None,
            messages: Some(1),
        },
        false,
    );
    let quotas = Arc::new(quotas);
    quotas
        .reserve(&[("bob@example.org".into(), 10)])
        .unwrap()
        .commit();
    let mut config = (*config_from(cfg, |_| {})).clone();
    config.quota = Some(quotas);
    let mut c = Client::on(Arc::new(config));
    c.send("EHLO c.test\r\n");
    let replies = c.send(
        "MAIL FROM:<mallory@c.test>\r\nRCPT TO:<staff@example.org>\r\nRCPT TO:<bob@example.org>\r\nRSET\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<staff@example.org>\r\nRCPT TO:<alice@example.org>\r\n",
    );
    assert_eq!(
        replies,
        vec![
            "250 2.1.0 Ok",
            "550 5.7.1 List staff@example.org accepts posts from members only",
            "452 4.2.2 <bob@example.org>: Mailbox full",
            "250 2.0.0 Ok",
            "250 2.1.0 Ok",
            "250 2.1.5 Ok",
            "250 2.1.5 Ok",
        ]
    );
}
