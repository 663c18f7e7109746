//! One test per command family, against a real index.

use super::*;

#[tokio::test]
async fn greeting_capability_and_login_rules() {
    let (_env, m) = world().await;
    let (mut c, greeting) = Client::new(&m, false);
    assert!(
        greeting.starts_with("* OK [CAPABILITY IMAP4rev1 "),
        "{greeting}"
    );
    assert!(greeting.contains("LOGINDISABLED"), "{greeting}");
    let r = c.say("a LOGIN alice secret").await;
    assert_eq!(
        r,
        "a NO [PRIVACYREQUIRED] Plaintext authentication disallowed: use STARTTLS\r\n"
    );
    let r = c.say("b NOOP").await;
    assert_eq!(r, "b OK NOOP completed\r\n");
    let r = c.say("c SELECT INBOX").await;
    assert_eq!(r, "c BAD Log in first\r\n");

    let (mut c, _) = Client::new(&m, true);
    assert!(c
        .say("a LOGIN alice wrong")
        .await
        .starts_with("a NO [AUTHENTICATIONFAILED]"));
    let r = c.say("b LOGIN alice secret").await;
    assert!(r.starts_with("b OK [CAPABILITY IMAP4rev1 "), "{r}");
    assert!(
        r.contains("UIDPLUS") && r.contains("MOVE") && r.contains("IDLE"),
        "{r}"
    );
    assert_eq!(c.s.account(), Some("alice"));
    assert_eq!(
        c.say("c LOGIN alice secret").await,
        "c BAD Already logged in\r\n"
    );
    let r = c.say("d LOGOUT").await;
    assert_eq!(r, "* BYE Logging out\r\nd OK LOGOUT completed\r\n<close>");
}

#[tokio::test]
async fn starttls_then_login_and_authenticate_plain() {
    let (_env, m) = world().await;
    let mut c = Client {
        s: Session::new(config(true, false), now()),
        b: Backend::new(m.clone(), 3),
    };
    assert!(c.sent_now().contains("STARTTLS"));
    let r = c.say("t STARTTLS").await;
    assert_eq!(r, "t OK Begin TLS negotiation now\r\n");
    assert!(c.s.is_tls());
    let caps = c.say("c CAPABILITY").await;
    assert!(
        caps.contains("AUTH=PLAIN") && !caps.contains("STARTTLS"),
        "{caps}"
    );
    // SASL PLAIN with a continuation: "\0alice\0secret".
    assert_eq!(c.say("a AUTHENTICATE PLAIN").await, "+ \r\n");
    let r = c.say("AGFsaWNlAHNlY3JldA==").await;
    assert!(r.starts_with("a OK [CAPABILITY"), "{r}");

    let (mut c, _) = Client::new(&m, true);
    let r = c.say("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==").await;
    assert!(r.starts_with("a OK"), "{r}");
    let (mut c, _) = Client::new(&m, true);
    c.say("a AUTHENTICATE PLAIN").await;
    assert_eq!(c.say("*").await, "a BAD Authentication cancelled\r\n");
}

#[tokio::test]
async fn select_reports_the_folder_and_examine_is_read_only() {
    let (_env, m) = world().await;
    let (mut c, _) = Client::new(&m, true);
    c.say("a LOGIN alice secret").await;
    let r = c.say("s SELECT inbox").await;
    assert!(r.contains("* 2 EXISTS\r\n"), "{r}");
    assert!(r.contains("* OK [UNSEEN 1]"), "{r}");
    assert!(r.contains("* OK [UIDNEXT 3]"), "{r}");
    assert!(r.contains("[UIDVALIDITY "), "{r}");
    assert!(r.ends_with("s OK [READ-WRITE] SELECT completed\r\n"), "{r}");
    let r = c.say("e EXAMINE INBOX").await;
    assert!(r.starts_with("* OK [CLOSED]"), "{r}");
    assert!(r.ends_with("e OK [READ-ONLY] EXAMINE completed\r\n"), "{r}");
    assert_eq!(
        c.say("f STORE 1 +FLAGS (\\Seen)").await,
        "f NO [READ-ONLY] Mailbox is read-only\r\n"
    );
    // BODY[] in a read-only folder does not set \Seen.
    c.say("g FETCH 1 BODY[]").await;
    assert!(!c.say("h FETCH 1 FLAGS").await.contains("\\Seen"));
    let r = c.say("n SELECT Nope").await;
    assert_eq!(
        r,
        "* OK [CLOSED] Previous mailbox closed\r\nn NO [NONEXISTENT] No such mailbox\r\n"
    );
    assert_eq!(
        c.say("x FETCH 1 FLAGS").await,
        "x BAD No mailbox selected\r\n"
    );
}

#[tokio::test]
async fn fetch_gives_back_the_stored_bytes_and_sections() {
    let (_env, m) = world().await;
    let mut c = Client::selected(&m).await;
    let r = c
        .say("a FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE)")
        .await;
    assert!(
        r.starts_with(&format!(
            "* 1 FETCH (UID 1 FLAGS () RFC822.SIZE {} INTERNALDATE \"",
            MSG1.len()
        )),
        "{r}"
    );
    assert!(r.contains("* 2 FETCH (UID 2 FLAGS ()"), "{r}");
    let r = c.say("b FETCH 1 BODY.PEEK[]").await;
    let want = format!(
        "* 1 FETCH (BODY[] {{{}}}\r\n{MSG1})\r\nb OK FETCH completed\r\n",
        MSG1.len()
    );
    assert_eq!(r, want);
    let r = c.say("c FETCH 1 BODY.PEEK[HEADER.FIELDS (subject)]").await;
    assert_eq!(
        r,
        "* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {24}\r\nSubject: Hello there\r\n\r\n)\r\nc OK FETCH completed\r\n"
    );
    let r = c.say("d FETCH 1 BODY.PEEK[TEXT]<0.5>").await;
    assert_eq!(
        r,
        "* 1 FETCH (BODY[TEXT]<0> {5}\r\nFirst)\r\nd OK FETCH completed\r\n"
    );
    let r = c
        .say("e UID FETCH 2 (BODY.PEEK[1] BODY.PEEK[2.MIME])")
        .await;
    assert!(r.contains("BODY[1] {8}\r\npart one"), "{r}");
    assert!(r.contains("BODY[2.MIME] {"), "{r}");
    assert!(r.contains("Content-Transfer-Encoding: base64"), "{r}");
    assert!(r.starts_with("* 2 FETCH (UID 2 "), "{r}");
    let r = c.say("f FETCH 1:2 (ENVELOPE BODYSTRUCTURE)").await;
    assert!(
        r.contains("ENVELOPE (\"Tue, 14 Nov 2023 22:13:20 +0000\" \"Hello there\" ((\"Bob\" NIL \"bob\" \"example.net\"))"),
        "{r}"
    );
    assert!(r.contains("\"<1@example.net>\")"), "{r}");
    assert!(r.contains("(\"text\" \"plain\""), "{r}");
    assert!(
        r.contains("(\"application\" \"octet-stream\" NIL NIL NIL \"base64\" 4) \"mixed\")"),
        "{r}"
    );
    // A non-PEEK body fetch sets \Seen, durably, and says so.
    let r = c.say("g FETCH 1 RFC822.HEADER").await;
    assert!(!r.contains("\\Seen"), "{r}");
    let r = c.say("h FETCH 1 BODY[TEXT]").await;
    assert!(r.contains("FLAGS (\\Seen)"), "{r}");
    let inbox = m.open("alice", &FolderName::inbox()).await.unwrap();
    assert!(inbox.snapshot().await[0].flags.contains("\\Seen"));
    assert!(c
        .say("i FETCH 3 FLAGS")
        .await
        .starts_with("i BAD Invalid message sequence number"));
    assert_eq!(
        c.say("j UID FETCH 3:9 FLAGS").await,
        "j OK UID FETCH completed\r\n"
    );
}

#[tokio::test]
async fn store_and_expunge_change_the_index() {
    let (_env, m) = world().await;
    let mut c = Client::selected(&m).await;
    let r = c.say("a STORE 1 +FLAGS (\\Deleted $Work)").await;
    assert_eq!(
        r,
        "* 1 FETCH (UID 1 FLAGS (\\Deleted $Work))\r\na OK STORE completed\r\n"
    );
    assert_eq!(
        c.say("b STORE 2 +FLAGS.SILENT (\\Flagged)").await,
        "b OK STORE completed\r\n"
    );
    assert_eq!(
        c.say("c UID STORE 2 -FLAGS (\\Flagged)").await,
        "* 2 FETCH (UID 2 FLAGS ())\r\nc OK UID STORE completed\r\n"
    );
    assert!(c
        .say("d STORE 1 +FLAGS (\\Recent)")
        .await
        .starts_with("d BAD"));
    let r = c.say("e EXPUNGE").await;
    assert_eq!(r, "* 1 EXPUNGE\r\ne OK EXPUNGE completed\r\n");
    let r = c.say("f FETCH 1 UID").await;
    assert_eq!(r, "* 1 FETCH (UID 2)\r\nf OK FETCH completed\r\n");
    // UID EXPUNGE removes only the named \Deleted messages.
    c.say("g STORE 1 +FLAGS (\\Deleted)").await;
    assert_eq!(c.say("h UID EXPUNGE 1").await, "h OK EXPUNGE completed\r\n");
    assert_eq!(
        c.say("i UID EXPUNGE 2").await,
        "* 1 EXPUNGE\r\ni OK EXPUNGE completed\r\n"
    );
    let inbox = m.open("alice", &FolderName::inbox()).await.unwrap();
    assert!(inbox.snapshot().await.is_empty());
}

#[tokio::test]
async fn condstore_modseq_changedsince_and_unchangedsince() {
    let (_env, m) = world().await;
    let mut c = Client::selected(&m).await;
    let r = c.say("a ENABLE CONDSTORE").await;
    assert_eq!(r, "* ENABLED CONDSTORE\r\na OK ENABLE completed\r\n");
    let r = c.say("b FETCH 1:* (MODSEQ)").await;
    assert!(
        r.contains("* 1 FETCH (MODSEQ (1))") && r.contains("* 2 FETCH (MODSEQ (2))"),
        "{r}"
    );
    let r = c.say("c STORE 2 +FLAGS (\\Seen)").await;
    assert_eq!(
        r,
        "* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ (3))\r\nc OK STORE completed\r\n"
    );
    let r = c.say("d FETCH 1:* (FLAGS) (CHANGEDSINCE 2)").await;
    assert_eq!(
        r,
        "* 2 FETCH (FLAGS (\\Seen) MODSEQ (3))\r\nd OK FETCH completed\r\n"
    );
    let r = c
        .say("e STORE 1:2 (UNCHANGEDSINCE 2) +FLAGS (\\Flagged)")
        .await;
    assert!(
        r.contains("* 1 FETCH (UID 1 FLAGS (\\Flagged) MODSEQ (4))"),
        "{r}"
    );
    assert!(
        r.ends_with("e OK [MODIFIED 2] Conditional STORE failed\r\n"),
        "{r}"
    );
    let r = c.say("f SEARCH MODSEQ 4").await;
    assert_eq!(r, "* SEARCH 1 (MODSEQ 4)\r\nf OK SEARCH completed\r\n");
}

#[tokio::test]
async fn append_copy_and_move_report_uids() {
    let (_env, m) = world().await;
    let mut c = Client::selected(&m).await;
    let r = c.raw(b"a APPEND Junk (\\Seen) {14}\r\n").await;
    assert_eq!(r, "+ Ready for literal data\r\n");
    let r = c.raw(b"Hello\r\nWorld\r\n\r\n").await;
    assert!(r.starts_with("a OK [APPENDUID "), "{r}");
    assert!(r.ends_with(" 1] APPEND completed\r\n"), "{r}");
    // LITERAL+ needs no continuation.
    let r = c.raw(b"b APPEND INBOX {4+}\r\nabc\n\r\n").await;
    assert!(
        r.contains("* 3 EXISTS\r\n") && r.contains(" 3] APPEND completed"),
        "{r}"
    );
    assert!(c
        .say("c APPEND Nope {1+}\r\nx")
        .await
        .starts_with("c NO [TRYCREATE]"));
    let r = c.say("d COPY 1:2 Junk").await;
    assert!(
        r.starts_with("d OK [COPYUID ") && r.contains(" 1:2 2:3] COPY completed"),
        "{r}"
    );
    let r = c.say("e UID MOVE 2 Junk").await;
    assert!(
        r.starts_with("* OK [COPYUID ") && r.contains(" 2 4] Moved\r\n"),
        "{r}"
    );
    assert!(
        r.ends_with("* 2 EXPUNGE\r\ne OK UID MOVE completed\r\n"),
        "{r}"
    );
    let junk = m
        .open("alice", &FolderName::parse("Junk").unwrap())
        .await
        .unwrap();
    let entries = junk.snapshot().await;
    assert_eq!(
        entries.iter().map(|e| e.uid).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(entries[0].flags.contains("\\Seen"));
    assert_eq!(junk.read(4).await.unwrap(), MSG2.as_bytes());
    assert!(c.say("f MOVE 1 INBOX").await.starts_with("f NO [CANNOT]"));
}

#[tokio::test]
async fn list_status_create_and_names_that_escape() {
    let (_env, m) = world().await;
    let (mut c, _) = Client::new(&m, true);
    c.say("a LOGIN alice secret").await;
    assert_eq!(
        c.say("b CREATE Lists/Rust").await,
        "b OK CREATE completed\r\n"
    );
    assert!(c
        .say("b2 CREATE Lists/Rust")
        .await
        .starts_with("b2 NO [ALREADYEXISTS]"));
    let r = c.say("c LIST \"\" *").await;
    assert_eq!(
        r,
        "* LIST (\\HasNoChildren) \"/\" INBOX\r\n* LIST (\\HasNoChildren \\Junk) \"/\" Junk\r\n* LIST (\\HasNoChildren) \"/\" Lists/Rust\r\nc OK LIST completed\r\n"
    );
    let r = c.say("d LIST \"\" %").await;
    assert!(!r.contains("Lists/Rust") && r.contains("Junk"), "{r}");
    let r = c.say("e LIST \"\" \"\"").await;
    assert_eq!(
        r,
        "* LIST (\\Noselect) \"/\" \"\"\r\ne OK LIST completed\r\n"
    );
    let r = c.say("f STATUS INBOX (MESSAGES UIDNEXT UNSEEN)").await;
    assert_eq!(
        r,
        "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\nf OK STATUS completed\r\n"
    );
    for bad in [
        "../bob",
        "/etc/passwd",
        "a/../../bob",
        "\"x\\\\y\"",
        "tmp-1",
        "\".hidden\"",
    ] {
        let r = c.say(&format!("g CREATE {bad}")).await;
        assert!(r.starts_with("g NO [CANNOT] bad folder name"), "{bad}: {r}");
        let r = c.say(&format!("h SELECT {bad}")).await;
        assert!(r.starts_with("h NO [CANNOT]"), "{bad}: {r}");
    }
    // A name with a NUL or CR in a literal is refused by the store's check.
    let r = c.raw(b"i CREATE {3+}\r\na\0b\r\n").await;
    assert!(
        r.starts_with("i NO [CANNOT]") || r.starts_with("i BAD"),
        "{r}"
    );
    // Another user's folder cannot be named: names are only names in this account.
    assert!(c
        .say("j SELECT ../bob/INBOX")
        .await
        .starts_with("j NO [CANNOT]"));
    assert!(c
        .say("k STATUS bob (MESSAGES)")
        .await
        .starts_with("k NO [NONEXISTENT]"));
}

#[tokio::test]
async fn search_by_flags_headers_text_and_sets() {
    let (_env, m) = world().await;
    let mut c = Client::selected(&m).await;
    c.say("a STORE 2 +FLAGS (\\Flagged)").await;
    for (query, want) in [
        ("ALL", "* SEARCH 1 2"),
        ("SUBJECT hello", "* SEARCH 1"),
        ("FROM CAROL", "* SEARCH 2"),
        ("HEADER Message-ID <1@", "* SEARCH 1"),
        ("FLAGGED", "* SEARCH 2"),
        ("NOT FLAGGED", "* SEARCH 1"),
        ("OR SUBJECT lunch SUBJECT hello", "* SEARCH 1 2"),
        ("BODY \"part one\"", "* SEARCH 2"),
        ("TEXT example.net", "* SEARCH 1"),
        ("LARGER 200", "* SEARCH 2"),
        ("SMALLER 200", "* SEARCH 1"),
        ("SINCE 14-Nov-2023", "* SEARCH 1 2"),
        ("BEFORE 14-Nov-2023", "* SEARCH"),
        ("SENTON 14-Nov-2023", "* SEARCH 1"),
        ("2 UNSEEN", "* SEARCH 2"),
        ("CHARSET UTF-8 SUBJECT Lunch", "* SEARCH 2"),
    ] {
        let r = c.say(&format!("s SEARCH {query}")).await;
        assert_eq!(r, format!("{want}\r\ns OK SEARCH completed\r\n"), "{query}");
    }
    let r = c.say("u UID SEARCH UID 2:*").await;
    assert_eq!(r, "* SEARCH 2\r\nu OK UID SEARCH completed\r\n");
    assert!(c
        .say("x SEARCH CHARSET KOI8-R ALL")
        .await
        .starts_with("x NO [BADCHARSET"));
}

#[tokio::test]
async fn other_sessions_and_deliveries_are_seen_on_noop_and_in_idle() {
    let (env, m) = world().await;
    let mut a = Client::selected(&m).await;
    let mut b = Client::selected(&m).await;
    a.say("x STORE 1 +FLAGS (\\Answered)").await;
    b.s.changed();
    assert_eq!(
        b.say("n NOOP").await,
        "* 1 FETCH (UID 1 FLAGS (\\Answered))\r\nn OK NOOP completed\r\n"
    );
    // IDLE: a delivery, noticed by the index, reaches the idling session with no input.
    assert_eq!(b.say("i IDLE").await, "+ idling\r\n");
    deliver(
        &env,
        "INBOX",
        "1700000001.000000.0",
        "Subject: new\r\n\r\nx\r\n",
    )
    .await;
    m.delivered("alice", &FolderName::inbox()).await.unwrap();
    b.s.changed();
    assert_eq!(b.run().await, "* 3 EXISTS\r\n");
    a.say("y STORE 2 +FLAGS (\\Deleted)").await;
    a.say("z EXPUNGE").await;
    b.s.changed();
    assert_eq!(b.run().await, "* 2 EXPUNGE\r\n");
    assert_eq!(b.say("DONE").await, "i OK IDLE terminated\r\n");
    // Both sessions agree on the UIDs.
    let want = "* 1 FETCH (UID 1)\r\n* 2 FETCH (UID 3)\r\n";
    assert_eq!(
        a.say("f FETCH 1:* UID").await,
        format!("{want}f OK FETCH completed\r\n")
    );
    assert_eq!(
        b.say("f FETCH 1:* UID").await,
        format!("{want}f OK FETCH completed\r\n")
    );
    // An unannounced change is still found by NOOP's rescan.
    deliver(
        &env,
        "INBOX",
        "1700000002.000000.0",
        "Subject: later\r\n\r\ny\r\n",
    )
    .await;
    assert_eq!(
        b.say("m NOOP").await,
        "* 3 EXISTS\r\nm OK NOOP completed\r\n"
    );
}

#[tokio::test]
async fn close_expunges_and_unselect_does_not() {
    let (_env, m) = world().await;
    let mut c = Client::selected(&m).await;
    c.say("a STORE 1 +FLAGS (\\Deleted)").await;
    assert_eq!(c.say("b UNSELECT").await, "b OK UNSELECT completed\r\n");
    c.say("s SELECT INBOX").await;
    assert_eq!(c.say("c CLOSE").await, "c OK CLOSE completed\r\n");
    let inbox = m.open("alice", &FolderName::inbox()).await.unwrap();
    assert_eq!(inbox.snapshot().await.len(), 1);
    assert_eq!(
        c.say("d NAMESPACE").await,
        "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\nd OK NAMESPACE completed\r\n"
    );
    assert!(c
        .say("e ID (\"name\" \"test\")")
        .await
        .contains("e OK ID completed"));
}
