//! `reprise verify` and `--role`: keyed histories verified with their key, a run started
//! without it named as not keyed, and a role refused what it may not do.

use crate::{TestDb, text};

const KEY: &str = "0707070707070707070707070707070707070707070707070707070707070707";

#[tokio::test]
async fn verify_names_keyed_and_unkeyed_runs_and_fails_without_the_key() {
    let db = TestDb::empty().await;
    assert!(db.reprise(&["migrate"]).status.success());
    let keyed = db.reprise_with_env(
        &["start", "order", "keyed-1"],
        &[("REPRISE_CHAIN_KEY", KEY)],
    );
    assert!(keyed.status.success(), "{}", text(&keyed.stderr));
    let plain = db.reprise(&["start", "order", "plain-1"]);
    assert!(plain.status.success(), "{}", text(&plain.stderr));

    let all = db.reprise_with_env(&["verify", "--all"], &[("REPRISE_CHAIN_KEY", KEY)]);
    assert!(all.status.success(), "{}", text(&all.stderr));
    assert!(
        text(&all.stdout).contains("2 runs: 1 keyed, 1 not keyed, 0 broken"),
        "{}",
        text(&all.stdout)
    );
    let one = db.reprise_with_env(&["verify", "keyed-1"], &[("REPRISE_CHAIN_KEY", KEY)]);
    assert!(
        text(&one.stdout).contains("keyed from seq 1"),
        "{}",
        text(&one.stdout)
    );
    // Not keyed, when every run must be: a failure.
    let strict = db.reprise_with_env(
        &["verify", "--all", "--require-keyed"],
        &[("REPRISE_CHAIN_KEY", KEY)],
    );
    assert_eq!(strict.status.code(), Some(1));
    // Without the key, a keyed link cannot be told from a corrupt one.
    let keyless = db.reprise(&["verify", "keyed-1"]);
    assert_eq!(keyless.status.code(), Some(1), "{}", text(&keyless.stdout));
    assert!(
        text(&keyless.stdout).contains("BROKEN   at seq 1"),
        "{}",
        text(&keyless.stdout)
    );
    let bad_key = db.reprise_with_env(&["verify", "--all"], &[("REPRISE_CHAIN_KEY", "abc")]);
    assert!(!bad_key.status.success());
    assert!(
        text(&bad_key.stderr).contains("chain key"),
        "{}",
        text(&bad_key.stderr)
    );

    // The observer reads, and may start nothing.
    let observed = db.reprise(&["--role", "reprise_observer", "verify", "plain-1"]);
    assert!(observed.status.success(), "{}", text(&observed.stderr));
    let refused = db.reprise(&["--role", "reprise_observer", "start", "order", "plain-2"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("permission denied"),
        "{}",
        text(&refused.stderr)
    );
    db.drop_database().await;
}
