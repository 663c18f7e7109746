//! Random bytes and random command-shaped lines never panic the session, and every line
//! it sends is a well-formed response (tagged, untagged or continuation).

use proptest::prelude::*;

use super::*;

fn commands() -> impl Strategy<Value = Vec<u8>> {
    let word = prop::sample::select(vec![
        "LOGIN alice secret",
        "SELECT INBOX",
        "FETCH 1:* (FLAGS BODY[])",
        "UID FETCH * BODY.PEEK[1.MIME]",
        "STORE 1 +FLAGS (\\Deleted)",
        "EXPUNGE",
        "IDLE",
        "DONE",
        "APPEND Junk {3}",
        "SEARCH OR 1 TEXT x",
        "COPY 1 Junk",
        "MOVE 1:2 Junk",
        "LIST \"\" *",
        "CREATE a/b",
        "STATUS INBOX (MESSAGES)",
        "NOOP",
        "AUTHENTICATE PLAIN",
        "CLOSE",
        "UNSELECT",
        "{5+}",
        "ENABLE CONDSTORE",
        "\"",
        "(",
        "*",
    ]);
    prop::collection::vec((word, any::<u8>()), 0..12).prop_map(|parts| {
        let mut out = Vec::new();
        for (i, (w, b)) in parts.into_iter().enumerate() {
            out.extend_from_slice(format!("t{i} {w}").as_bytes());
            if b % 5 == 0 {
                out.push(b);
            }
            out.extend_from_slice(b"\r\n");
        }
        out
    })
}

/// Every response parses with imap-codec's response decoder: our writer and its parser
/// agree on quoting, literals and codes.
fn well_formed(text: &[u8]) -> Result<(), String> {
    let mut rest = text.strip_suffix(b"<close>").unwrap_or(text);
    while !rest.is_empty() {
        match imap_codec::decode::Decoder::decode(&imap_codec::ResponseCodec::default(), rest) {
            Ok((r, _)) => rest = r,
            Err(e) => return Err(format!("{e:?} at {:?}", String::from_utf8_lossy(rest))),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_input_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..600), cmds in commands()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            let (_env, m) = world().await;
            let (mut c, _) = Client::new(&m, true);
            let out = c.raw_bytes(&cmds).await;
            prop_assert_eq!(well_formed(&out), Ok(()));
            c.raw(&bytes).await;
            let mut c = Client::selected(&m).await;
            c.raw(&bytes).await;
            let out = c.raw_bytes(&cmds).await;
            prop_assert_eq!(well_formed(&out), Ok(()));
            Ok(())
        })?;
    }
}
