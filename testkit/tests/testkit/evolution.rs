//! Which changes to a payload type are safe for runs in flight (the table in
//! `docs/versioning.md`), each proven against a history recorded with the old type and checked
//! in under `tests/histories/evolution/` — recorded once, never rewritten (run with
//! `REPRISE_BLESS_FIXTURES=1` to record a missing one).
//!
//! Every history is of the same workflow: it asks the `quote` activity for a `Quote`, sleeps,
//! and returns the quote it decoded, shown with `{:?}`. Replaying with the new type must decode
//! the old result: the run's outcome then shows the new type's view of the old bytes.

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

use reprise_history::{Limits, RecordedHistory, Seq};
use reprise_sdk::{ActivityDef, Execution, Registry, RunStatus, WorkflowDef};
use reprise_testkit::TestEnv;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

const QUOTE_WORKFLOW: WorkflowDef<String, String> = WorkflowDef::new("quote-workflow");

fn registry<Q: Serialize + DeserializeOwned + Debug + Send + 'static>() -> Registry {
    const QUOTE_NAME: &str = "quote";
    Registry::builder()
        .workflow(QUOTE_WORKFLOW, |ctx, item: String| async move {
            let quote: Q = ctx
                .activity(ActivityDef::<String, Q>::new(QUOTE_NAME), &item)
                .await?;
            ctx.sleep(Duration::from_secs(60)).await?;
            Ok(format!("{quote:?}"))
        })
        .build()
        .unwrap()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/histories/evolution")
        .join(format!("{name}.json"))
}

/// The checked-in history recorded with the old type `Old` returning `value`; recorded now
/// only if it is missing and blessing was asked for.
fn recorded<Old>(name: &str, value: Old) -> RecordedHistory
where
    Old: Serialize + DeserializeOwned + Debug + Clone + Send + 'static,
{
    let path = fixture(name);
    if !path.exists() && std::env::var_os("REPRISE_BLESS_FIXTURES").is_some() {
        let mut env = TestEnv::new(registry::<Old>());
        env.stand_in(ActivityDef::<String, Old>::new("quote"), move |_, _| {
            Ok(value.clone())
        })
        .unwrap();
        let run = env.start(QUOTE_WORKFLOW, name, &"tea".to_string()).unwrap();
        env.result(&run).unwrap();
        let history = env.histories(name).unwrap().remove(0);
        std::fs::write(&path, history.to_json().unwrap()).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "fixture {} is missing ({e}); record it with REPRISE_BLESS_FIXTURES=1",
            path.display()
        )
    });
    RecordedHistory::from_json(&text, &Limits::DEFAULT).unwrap()
}

/// Replays the old history with the new type; the outcome as the new code computes it.
fn replay_with<New>(history: &RecordedHistory) -> Result<String, reprise_sdk::Error>
where
    New: Serialize + DeserializeOwned + Debug + Send + 'static,
{
    let execution = Execution::replay(&registry::<New>(), history.events())?;
    match execution.status() {
        RunStatus::Completed(result) => Ok(result.decode::<String>().unwrap()),
        other => panic!("the replayed run is {other:?}"),
    }
}

/// The error an unsafe change gives: the payload's seq, the type, serde's message.
fn undecodable(error: reprise_sdk::Error) -> reprise_sdk::UndecodablePayload {
    match error {
        reprise_sdk::Error::UndecodablePayload(e) => *e,
        other => panic!("expected an undecodable payload, got {other}"),
    }
}

mod v1 {
    use super::*;

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub(super) struct Quote {
        pub(super) price: u64,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub(super) struct QuoteWithNote {
        pub(super) price: u64,
        pub(super) note: String,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub(super) enum Tier {
        Gold,
        Silver,
    }

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub(super) struct Small {
        pub(super) price: u32,
    }
}

#[test]
fn adding_a_field_with_serde_default_is_safe() {
    #[derive(Debug, Serialize, Deserialize)]
    struct Quote {
        price: u64,
        #[serde(default)]
        currency: Option<String>,
    }
    let history = recorded("add-defaulted-field", v1::Quote { price: 12 });
    assert_eq!(
        replay_with::<Quote>(&history).unwrap(),
        "Quote { price: 12, currency: None }"
    );
}

#[test]
fn removing_a_field_is_safe() {
    #[derive(Debug, Serialize, Deserialize)]
    struct QuoteWithNote {
        price: u64,
    }
    let history = recorded(
        "remove-field",
        v1::QuoteWithNote {
            price: 12,
            note: "bulk".into(),
        },
    );
    assert_eq!(
        replay_with::<QuoteWithNote>(&history).unwrap(),
        "QuoteWithNote { price: 12 }"
    );
}

#[test]
fn renaming_a_field_with_serde_alias_is_safe() {
    #[derive(Debug, Serialize, Deserialize)]
    struct Quote {
        #[serde(alias = "price")]
        amount: u64,
    }
    let history = recorded("rename-with-alias", v1::Quote { price: 12 });
    assert_eq!(
        replay_with::<Quote>(&history).unwrap(),
        "Quote { amount: 12 }"
    );
}

#[test]
fn adding_an_enum_variant_is_safe() {
    #[derive(Debug, Serialize, Deserialize)]
    enum Tier {
        Gold,
        Silver,
        Bronze,
    }
    let history = recorded("add-enum-variant", v1::Tier::Silver);
    assert_eq!(replay_with::<Tier>(&history).unwrap(), "Silver");
    let _ = Tier::Bronze;
    let _ = Tier::Gold;
}

#[test]
fn widening_an_integer_is_safe() {
    #[derive(Debug, Serialize, Deserialize)]
    struct Small {
        price: u64,
    }
    let history = recorded(
        "widen-integer",
        v1::Small {
            price: 4_000_000_000,
        },
    );
    assert_eq!(
        replay_with::<Small>(&history).unwrap(),
        "Small { price: 4000000000 }"
    );
}

#[test]
fn wrapping_a_field_in_option_is_safe() {
    #[derive(Debug, Serialize, Deserialize)]
    struct Quote {
        price: Option<u64>,
    }
    let history = recorded("wrap-in-option", v1::Quote { price: 12 });
    assert_eq!(
        replay_with::<Quote>(&history).unwrap(),
        "Quote { price: Some(12) }"
    );
}

#[test]
fn renaming_a_field_without_an_alias_is_unsafe_and_says_which_payload() {
    #[derive(Debug, Serialize, Deserialize)]
    struct Quote {
        amount: u64,
    }
    let history = recorded("rename-with-alias", v1::Quote { price: 12 });
    let e = undecodable(replay_with::<Quote>(&history).unwrap_err());
    assert_eq!(e.seq, Seq::new(3));
    assert_eq!(e.holder, r#"result of activity "quote""#);
    assert!(e.rust_type.ends_with("Quote"), "{}", e.rust_type);
    assert!(e.to_string().contains("missing field `amount`"), "{e}");
}

#[test]
fn changing_a_fields_type_is_unsafe_and_says_which_payload() {
    #[derive(Debug, Serialize, Deserialize)]
    struct Quote {
        price: String,
    }
    let history = recorded("add-defaulted-field", v1::Quote { price: 12 });
    let e = undecodable(replay_with::<Quote>(&history).unwrap_err());
    assert_eq!(e.seq, Seq::new(3));
    assert!(
        e.to_string()
            .contains("invalid type: integer `12`, expected a string"),
        "{e}"
    );
}

#[test]
fn the_replayer_reports_an_unsafe_change_as_an_undecodable_payload() {
    #[derive(Debug, Serialize, Deserialize)]
    struct Quote {
        price: String,
    }
    let replayer = reprise_testkit::Replayer::new(registry::<Quote>());
    let err = replayer
        .replay_file(fixture("add-defaulted-field"))
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with(r#"payload at seq 3 (result of activity "quote") does not decode as "#),
        "{message}"
    );
    assert!(!message.contains("nondeterminism"), "{message}");
}
