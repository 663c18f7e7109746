use super::rules::classify;
use super::*;

fn scorer(cfg: &ScoreConfig) -> Scorer {
    Scorer::new(cfg).unwrap()
}

fn cfg() -> ScoreConfig {
    ScoreConfig {
        enabled: true,
        ..ScoreConfig::default()
    }
}

/// A clean message: every header a real MUA writes, plain text.
const CLEAN: &str = "Date: Thu, 3 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@a.example>\r\nFrom: Alice <alice@a.example>\r\nTo: bob@b.example\r\nSubject: Lunch on Friday?\r\n\r\nHi Bob, lunch?\r\n";

fn with(replace: &str, by: &str) -> String {
    assert!(CLEAN.contains(replace), "{replace}");
    CLEAN.replacen(replace, by, 1)
}

fn hits(msg: &str) -> Vec<String> {
    hits_with(&cfg(), msg, &Signals::default())
}

fn hits_with(c: &ScoreConfig, msg: &str, s: &Signals) -> Vec<String> {
    scorer(c)
        .score(msg.as_bytes(), s)
        .hits
        .into_iter()
        .map(|h| h.rule)
        .collect()
}

#[test]
fn a_clean_message_hits_nothing() {
    assert_eq!(hits(CLEAN), Vec::<String>::new());
}

#[test]
fn missing_headers_hit_and_present_ones_do_not() {
    assert_eq!(
        hits(&with("Date: Thu, 3 Dec 2026 10:00:00 +0000\r\n", "")),
        ["MISSING_DATE"]
    );
    // A Date mail-parser cannot read is still a Date (the rule is about its absence).
    assert_eq!(
        hits(&with("Thu, 3 Dec 2026 10:00:00 +0000", "someday")),
        Vec::<String>::new()
    );
    assert_eq!(
        hits(&with("Message-ID: <1@a.example>\r\n", "")),
        ["MISSING_MID"]
    );
    assert_eq!(
        hits(&with("From: Alice <alice@a.example>\r\n", "")),
        ["MISSING_FROM"]
    );
    assert_eq!(
        hits(&with("Subject: Lunch on Friday?\r\n", "")),
        ["MISSING_SUBJECT"]
    );
    assert_eq!(
        hits(&with("Subject: Lunch on Friday?", "Subject:   ")),
        ["EMPTY_SUBJECT"]
    );
}

#[test]
fn subject_all_caps_needs_several_words_in_capitals() {
    assert_eq!(
        hits(&with("Lunch on Friday?", "CLAIM YOUR PRIZE NOW!!")),
        ["SUBJ_ALL_CAPS"]
    );
    // Near misses: one lower-case letter, one word, too short.
    for s in ["CLAIM YOUR PRIZe NOW", "CONGRATULATIONS!!!", "RE: OK"] {
        assert_eq!(
            hits(&with("Lunch on Friday?", s)),
            Vec::<String>::new(),
            "{s}"
        );
    }
    // RFC 2047-encoded capitals are capitals.
    assert_eq!(
        hits(&with("Lunch on Friday?", "=?UTF-8?Q?GRATIS_F=C3=9CR_SIE?=")),
        ["SUBJ_ALL_CAPS"]
    );
}

fn multipart(parts: &[(&str, &str)]) -> String {
    let mut m = CLEAN.replace(
        "\r\n\r\nHi Bob, lunch?\r\n",
        "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n",
    );
    for (headers, body) in parts {
        m.push_str(&format!("--b1\r\n{headers}\r\n\r\n{body}\r\n"));
    }
    m.push_str("--b1--\r\n");
    m
}

#[test]
fn html_only_is_html_without_a_plain_alternative() {
    let html = ("Content-Type: text/html", "<p>Buy <b>now</b></p>");
    let text = ("Content-Type: text/plain", "Buy now");
    assert_eq!(hits(&multipart(&[html])), ["MIME_HTML_ONLY"]);
    assert_eq!(hits(&multipart(&[text, html])), Vec::<String>::new());
    // A text/plain attachment is no alternative.
    let att = (
        "Content-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt",
        "x",
    );
    assert_eq!(hits(&multipart(&[html, att])), ["MIME_HTML_ONLY"]);
    // A single-part html message.
    assert_eq!(
        hits(&with(
            "\r\n\r\nHi",
            "\r\nContent-Type: text/html\r\n\r\n<i>Hi</i>"
        )),
        ["MIME_HTML_ONLY"]
    );
}

#[test]
fn from_name_spoof_is_an_address_of_another_domain_in_the_name() {
    let from = |f: &str| hits(&with("Alice <alice@a.example>", f));
    assert_eq!(
        from("\"service@bank.example\" <x@evil.example>"),
        ["FROMNAME_SPOOF"]
    );
    assert_eq!(
        from("\"Bank (service@bank.example)\" <x@evil.example>"),
        ["FROMNAME_SPOOF"]
    );
    // Near misses: the same domain, a parent domain, a name without an address.
    assert!(from("\"alice@A.example\" <alice@a.example>").is_empty());
    assert!(from("\"news@shop.example\" <n@mail.shop.example>").is_empty());
    assert!(from("\"Alice at a.example\" <x@evil.example>").is_empty());
    // badshop.example is not under shop.example.
    assert_eq!(
        from("\"news@shop.example\" <n@badshop.example>"),
        ["FROMNAME_SPOOF"]
    );
}

#[test]
fn risky_file_names_are_classified() {
    for bad in [
        "setup.exe",
        "RUN.JS",
        "a.scr",
        "x.bat",
        "cmd.com",
        "s.vbs",
        "app.jar",
        "a.exe. ",
        "dir\\a.exe",
        ".exe",
    ] {
        assert_eq!(classify(bad), Some(false), "{bad}");
    }
    for double in ["invoice.pdf.exe", "scan.JPG.scr", "report.docx .js"] {
        assert_eq!(classify(double), Some(true), "{double}");
    }
    for fine in [
        "invoice.pdf",
        "exe",
        "notes.exe.txt",
        "archive.tar.gz",
        "my.exec",
    ] {
        assert_eq!(classify(fine), None, "{fine}");
    }
    // A bad extension behind a non-document one is single, not double.
    assert_eq!(classify("setup.v2.exe"), Some(false));
}

#[test]
fn risky_attachments_hit_also_through_rfc2231_and_nested_messages() {
    let text = ("Content-Type: text/plain", "see attached");
    let att = |h: &str| (h.to_string(), "AAAA".to_string());
    let run = |h: &str| {
        let a = att(h);
        hits(&multipart(&[text, (&a.0, &a.1)]))
    };
    assert_eq!(
        run("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"setup.exe\"\r\nContent-Transfer-Encoding: base64"),
        ["MIME_BAD_EXTENSION"]
    );
    assert_eq!(
        run("Content-Type: application/octet-stream; name=\"invoice.pdf.exe\"\r\nContent-Transfer-Encoding: base64"),
        ["MIME_DOUBLE_BAD_EXTENSION"]
    );
    // RFC 2231: percent-encoded, and split over continuations.
    assert_eq!(
        run("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf.exe\r\nContent-Transfer-Encoding: base64"),
        ["MIME_DOUBLE_BAD_EXTENSION"]
    );
    assert_eq!(
        run("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*0=\"invoice.pd\"; filename*1=\"f.scr\"\r\nContent-Transfer-Encoding: base64"),
        ["MIME_DOUBLE_BAD_EXTENSION"]
    );
    // The near miss: a pdf.
    assert!(run("Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"invoice.pdf\"\r\nContent-Transfer-Encoding: base64").is_empty());
    // Inside a forwarded message.
    let inner = "From: x@y.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b2\"\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b2\r\nContent-Type: application/octet-stream; name=\"run.js\"\r\n\r\nx\r\n--b2--\r\n";
    assert_eq!(
        hits(&multipart(&[text, ("Content-Type: message/rfc822", inner)])),
        ["MIME_BAD_EXTENSION"]
    );
}

#[test]
fn signals_hit_their_rules() {
    let s = |spf: &str, dkim: &str, dmarc: &str, fcrdns: bool| Signals {
        spf: Some(spf.into()),
        dkim: Some(dkim.into()),
        dmarc: Some(dmarc.into()),
        dnsbl: vec![],
        fcrdns: Some(fcrdns),
    };
    assert_eq!(
        hits_with(&cfg(), CLEAN, &s("fail", "fail", "fail", false)),
        ["DKIM_INVALID", "DMARC_FAIL", "RDNS_NOT_FCRDNS", "SPF_FAIL"]
    );
    assert_eq!(
        hits_with(&cfg(), CLEAN, &s("SoftFail", "pass", "pass", true)),
        ["SPF_SOFTFAIL"]
    );
    for other in ["pass", "neutral", "none", "temperror", "permerror"] {
        assert!(
            hits_with(&cfg(), CLEAN, &s(other, other, other, true)).is_empty(),
            "{other}"
        );
    }
    // Nothing known is nothing hit.
    assert!(hits_with(&cfg(), CLEAN, &Signals::default()).is_empty());
}

#[test]
fn each_listed_zone_is_its_own_rule_with_its_own_score() {
    let mut c = cfg();
    c.scores.insert("RCVD_IN_BL_EXAMPLE".into(), 3.5);
    let s = Signals {
        dnsbl: vec![
            "bl.example".into(),
            "zen.spam-haus.test.".into(),
            "bl.example".into(),
        ],
        ..Signals::default()
    };
    let score = scorer(&c).score(CLEAN.as_bytes(), &s);
    assert_eq!(
        score.hits,
        [
            Hit {
                rule: "RCVD_IN_BL_EXAMPLE".into(),
                score: 3.5
            },
            Hit {
                rule: "RCVD_IN_ZEN_SPAM_HAUS_TEST".into(),
                score: 2.0
            },
        ]
    );
    assert_eq!(score.total, 5.5);
}

#[test]
fn overrides_change_scores_and_zero_turns_a_rule_off() {
    let msg = with(
        "Date: Thu, 3 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@a.example>\r\n",
        "",
    );
    let mut c = cfg();
    c.scores.insert("MISSING_DATE".into(), 4.25);
    c.scores.insert("MISSING_MID".into(), 0.0);
    let score = scorer(&c).score(msg.as_bytes(), &Signals::default());
    assert_eq!(
        score.hits,
        [Hit {
            rule: "MISSING_DATE".into(),
            score: 4.25
        }]
    );
    assert_eq!(score.total, 4.25);
    // Defaults otherwise.
    let score = scorer(&cfg()).score(msg.as_bytes(), &Signals::default());
    assert_eq!(score.total, 1.4 + 0.5);
}

fn user(name: &str, pattern: &str, score: f64) -> UserRule {
    UserRule {
        name: name.into(),
        header: None,
        body: false,
        rawbody: false,
        pattern: pattern.into(),
        score,
    }
}

#[test]
fn user_rules_match_headers_body_and_rawbody() {
    let mut c = cfg();
    c.rule = vec![
        UserRule {
            header: Some("subject".into()),
            ..user("SUBJ_LUNCH", "(?i)lunch", 1.5)
        },
        UserRule {
            header: Some("From".into()),
            ..user("FROM_ALICE", "^Alice <alice@", 0.25)
        },
        UserRule {
            header: Some("ALL".into()),
            ..user("HAS_TO", "(?m)^To: bob@", 0.5)
        },
        UserRule {
            body: true,
            ..user("BODY_BUY", "Buy now", 2.0)
        },
        UserRule {
            rawbody: true,
            ..user("RAW_BOLD", "<b>", 3.0)
        },
    ];
    let s = scorer(&c);
    let score = s.score(CLEAN.as_bytes(), &Signals::default());
    assert_eq!(
        score
            .hits
            .iter()
            .map(|h| h.rule.as_str())
            .collect::<Vec<_>>(),
        ["FROM_ALICE", "HAS_TO", "SUBJ_LUNCH"]
    );
    assert_eq!(score.total, 2.25);
    // body sees HTML as text (tags gone, so `<b>` is not there, `Buy now` is: the tags
    // between are dropped); rawbody sees the tags. Quoted-printable is decoded first.
    let html = multipart(&[
        ("Content-Type: text/plain", "nothing here"),
        (
            "Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable",
            "<p>Buy <b>n=\r\now</b></p>",
        ),
    ]);
    let names: Vec<String> = s
        .score(html.as_bytes(), &Signals::default())
        .hits
        .into_iter()
        .map(|h| h.rule)
        .collect();
    assert!(names.contains(&"RAW_BOLD".to_string()), "{names:?}");
    // Near miss for body: with the tags rendered away the words still read "Buy now"?
    // html_to_text keeps inline text together, so it does hit.
    assert!(names.contains(&"BODY_BUY".to_string()), "{names:?}");
    // And a plain part with `<b>` in it is rawbody too, but a header is neither.
    let plain = with("Hi Bob, lunch?", "nothing");
    let names = hits_with(&c, &plain, &Signals::default());
    assert!(!names.contains(&"BODY_BUY".to_string()) && !names.contains(&"RAW_BOLD".to_string()));
}

#[test]
fn body_rules_see_only_the_first_kib_of_each_part() {
    let mut c = cfg();
    c.body_scan_kib = 1;
    c.rule = vec![UserRule {
        body: true,
        ..user("LATE_WORD", "needle", 1.0)
    }];
    let early = with("Hi Bob, lunch?", &format!("needle {}", "x".repeat(2000)));
    let late = with("Hi Bob, lunch?", &format!("{} needle", "x".repeat(2000)));
    assert_eq!(hits_with(&c, &early, &Signals::default()), ["LATE_WORD"]);
    assert!(hits_with(&c, &late, &Signals::default()).is_empty());
    c.body_scan_kib = 4;
    assert_eq!(hits_with(&c, &late, &Signals::default()), ["LATE_WORD"]);
}

#[test]
fn thresholds_give_the_action() {
    let c = cfg();
    let at = |total: f64| {
        Score {
            total,
            hits: vec![],
        }
        .action(&c)
    };
    assert_eq!(at(4.9), Action::Deliver);
    assert_eq!(at(5.0), Action::Junk);
    assert_eq!(at(9.9), Action::Junk);
    assert_eq!(at(10.0), Action::Reject);
    assert_eq!(at(-3.0), Action::Deliver);
    let off = ScoreConfig::default();
    assert_eq!(
        Score {
            total: 50.0,
            hits: vec![]
        }
        .action(&off),
        Action::Deliver
    );
}

fn score_of(hits: &[(&str, f64)]) -> Score {
    let hits: Vec<Hit> = hits
        .iter()
        .map(|(r, s)| Hit {
            rule: r.to_string(),
            score: *s,
        })
        .collect();
    Score {
        total: hits.iter().map(|h| h.score).sum(),
        hits,
    }
}

#[test]
fn headers_render_like_spamassassin() {
    let c = cfg();
    assert_eq!(
        score_of(&[("MIME_HTML_ONLY", 0.7), ("MISSING_DATE", 1.4), ("SPF_FAIL", 5.2)]).headers(&c),
        "X-Spam-Score: 7.3\r\nX-Spam-Status: Yes, score=7.3 required=5.0 tests=MIME_HTML_ONLY,MISSING_DATE,\r\n\tSPF_FAIL autolearn=disabled\r\n"
    );
    assert_eq!(
        Score::default().headers(&c),
        "X-Spam-Score: 0.0\r\nX-Spam-Status: No, score=0.0 required=5.0 tests=none autolearn=disabled\r\n"
    );
    // Negative totals keep their sign, a rounded zero loses it.
    assert_eq!(
        score_of(&[("A", -1.25)]).headers(&c).lines().next(),
        Some("X-Spam-Score: -1.3")
    );
    assert_eq!(
        score_of(&[("A", -0.04)]).headers(&c).lines().next(),
        Some("X-Spam-Score: 0.0")
    );
}

#[test]
fn long_test_lists_fold_after_a_comma_before_78_columns() {
    let names = [
        "DKIM_INVALID",
        "DMARC_FAIL",
        "FROMNAME_SPOOF",
        "MIME_DOUBLE_BAD_EXTENSION",
        "MIME_HTML_ONLY",
        "MISSING_DATE",
        "MISSING_MID",
        "RDNS_NOT_FCRDNS",
        "SPF_FAIL",
    ];
    let s = score_of(&names.iter().map(|n| (*n, 1.0)).collect::<Vec<_>>());
    let h = s.headers(&cfg());
    assert_eq!(
        h,
        "X-Spam-Score: 9.0\r\nX-Spam-Status: Yes, score=9.0 required=5.0 tests=DKIM_INVALID,DMARC_FAIL,\r\n\tFROMNAME_SPOOF,MIME_DOUBLE_BAD_EXTENSION,MIME_HTML_ONLY,MISSING_DATE,\r\n\tMISSING_MID,RDNS_NOT_FCRDNS,SPF_FAIL autolearn=disabled\r\n"
    );
    for line in h.split("\r\n") {
        assert!(line.len() <= 78, "{line:?}");
    }
}

#[test]
fn bad_configs_name_the_rule_or_key() {
    let bad = |c: ScoreConfig| Scorer::new(&c).unwrap_err();
    let mut c = cfg();
    c.rule = vec![UserRule {
        body: true,
        ..user("OPEN", "(unclosed", 1.0)
    }];
    let e = bad(c);
    assert_eq!(e.at, ScoreErrorAt::Rule("OPEN".into()));
    assert!(
        e.message
            .starts_with("scoring rule \"OPEN\": bad pattern: "),
        "{}",
        e.message
    );
    assert!(e.message.contains("unclosed group"), "{}", e.message);

    let mut c = cfg();
    c.rule = vec![user("NOWHERE", "x", 1.0)];
    assert!(bad(c).message.contains("exactly one of"));
    let mut c = cfg();
    c.rule = vec![UserRule {
        body: true,
        rawbody: true,
        ..user("BOTH", "x", 1.0)
    }];
    assert!(bad(c).message.contains("exactly one of"));
    let mut c = cfg();
    c.rule = vec![UserRule {
        body: true,
        ..user("MISSING_DATE", "x", 1.0)
    }];
    assert!(bad(c).message.contains("built-in"));
    let mut c = cfg();
    c.rule = vec![UserRule {
        body: true,
        ..user("lower", "x", 1.0)
    }];
    assert!(bad(c).message.contains("A-Z"));
    let mut c = cfg();
    let r = UserRule {
        body: true,
        ..user("TWICE", "x", 1.0)
    };
    c.rule = vec![r.clone(), r];
    assert!(bad(c).message.contains("defined twice"));
    let mut c = cfg();
    c.rule = vec![UserRule {
        header: Some("Sub ject".into()),
        ..user("HDR", "x", 1.0)
    }];
    assert!(bad(c).message.contains("not a header field name"));

    let mut c = cfg();
    c.scores.insert("MISING_DATE".into(), 1.0);
    assert_eq!(
        bad(c).at,
        ScoreErrorAt::Key("scoring.scores.MISING_DATE".into())
    );
    let mut c = cfg();
    c.junk = 12.0;
    assert_eq!(bad(c).at, ScoreErrorAt::Key("scoring.junk".into()));
    let mut c = cfg();
    c.body_scan_kib = 0;
    assert_eq!(bad(c).at, ScoreErrorAt::Key("scoring.body_scan_kib".into()));
    let mut c = cfg();
    c.reject = f64::NAN;
    assert_eq!(bad(c).at, ScoreErrorAt::Key("scoring.reject".into()));
}

#[test]
fn the_scorer_is_shareable() {
    fn is<T: Send + Sync>() {}
    is::<Scorer>();
}

#[test]
fn garbage_scores_without_panicking() {
    let s = scorer(&cfg());
    for input in [
        &b""[..],
        b"\xff\xfe\x00garbage",
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x",
        b"Subject: =?UTF-8?B?////?=\r\nFrom: \"@@\" <@>\r\n\r\n",
    ] {
        let _ = s.score(input, &Signals::default());
    }
    let huge = format!("Subject: {}\r\n\r\n", "A ".repeat(200_000));
    let _ = s.score(huge.as_bytes(), &Signals::default());
}

proptest::proptest! {
    #[test]
    fn any_bytes_score_deterministically(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
        let s = scorer(&cfg());
        let a = s.score(&bytes, &Signals::default());
        let b = s.score(&bytes, &Signals::default());
        proptest::prop_assert_eq!(a, b);
    }

    #[test]
    fn mime_like_input_never_panics(
        lines in proptest::collection::vec(proptest::sample::select(vec![
            "Content-Type: multipart/mixed; boundary=b", "--b", "--b--", "",
            "Content-Type: text/html", "Content-Disposition: attachment; filename*0*=utf-8''a%2",
            "Content-Transfer-Encoding: base64", "PGI+", "=?utf-8?q?=FF?=", "From: \"a@b.c\" <d@e.f>",
            "Content-Type: message/rfc822", "\u{00e9}\u{00e9}",
        ]), 0..60)
    ) {
        let msg = lines.join("\r\n");
        let _ = scorer(&cfg()).score(msg.as_bytes(), &Signals::default());
    }
}
