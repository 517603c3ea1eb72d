//! Queries and custom status in `TestEnv`, with the engine's semantics: a query reads the run
//! as its last step left it and records nothing; the status is what its steps stored.

use std::time::Duration;

use reprise_sdk::{
    ActivityDef, ActivityError, QueryDef, QueryError, Registry, SignalDef, WorkflowContext,
    WorkflowDef, WorkflowError, WorkflowState,
};
use reprise_testkit::{Error, TestEnv};

const SHIP: ActivityDef<u32, ()> = ActivityDef::new("ship");
const MORE: SignalDef<u32> = SignalDef::new("more");
const SHIPPED: QueryDef<(), u32> = QueryDef::new("shipped");
const BOOM: QueryDef<(), u32> = QueryDef::new("boom");
/// Ships parcels one an hour; answers how many have gone, and publishes it as its status.
const SHIPPING: WorkflowDef<u32, u32> = WorkflowDef::new("shipping");

async fn shipping(ctx: WorkflowContext, parcels: u32) -> Result<u32, WorkflowError> {
    let shipped = WorkflowState::new(0u32);
    ctx.on_query(SHIPPED, &shipped, |shipped, ()| *shipped);
    ctx.on_query(BOOM, &shipped, |_, ()| panic!("no such parcel"));
    let mut parcels = parcels;
    let mut i = 0;
    while i < parcels {
        ctx.activity(SHIP, &i).await?;
        i += 1;
        shipped.update(|s| *s = i);
        ctx.set_status(&format!("{i} of {parcels} shipped"))
            .map_err(|e| WorkflowError::failed("Status", e.to_string()))?;
        if i == parcels {
            parcels += ctx.signal(MORE).await?;
        } else {
            ctx.sleep(Duration::from_secs(3_600)).await?;
        }
    }
    Ok(i)
}

fn env() -> TestEnv {
    let registry = Registry::builder()
        .workflow(SHIPPING, shipping)
        .activity(SHIP, |_, _: u32| async { Ok::<_, ActivityError>(()) })
        .build()
        .unwrap();
    TestEnv::new(registry)
}

#[test]
fn a_query_answers_from_the_run_as_it_stands_and_records_nothing() {
    let mut env = env();
    let run = env.start(SHIPPING, "ship-1", &3).unwrap();
    // Runs until it waits for more parcels (jumping the hours between).
    env.run_until_idle().unwrap();
    let before = env.history("ship-1").unwrap().events().len();
    assert_eq!(env.query("ship-1", SHIPPED, &()).unwrap(), 3);
    assert_eq!(env.history("ship-1").unwrap().events().len(), before);
    assert_eq!(
        env.custom_status::<String>("ship-1").unwrap().as_deref(),
        Some("3 of 3 shipped")
    );
    env.signal("ship-1", MORE, &1).unwrap();
    env.run_until_idle().unwrap();
    assert_eq!(env.query("ship-1", SHIPPED, &()).unwrap(), 4);
    assert_eq!(
        env.custom_status::<String>("ship-1").unwrap().as_deref(),
        Some("4 of 4 shipped")
    );
    env.signal("ship-1", MORE, &0).unwrap();
    assert_eq!(env.result(&run).unwrap(), 4);
    assert_eq!(
        env.query("ship-1", SHIPPED, &()).unwrap(),
        4,
        "closed: still answered"
    );
}

#[test]
fn a_terminated_run_is_answered_from_its_history() {
    let mut env = env();
    env.start(SHIPPING, "ship-2", &2).unwrap();
    env.run_until_idle().unwrap();
    env.terminate("ship-2", "stop").unwrap();
    assert_eq!(env.query("ship-2", SHIPPED, &()).unwrap(), 2);
}

#[test]
fn refused_queries_are_typed_and_leave_the_run_alone() {
    let mut env = env();
    let run = env.start(SHIPPING, "ship-3", &1).unwrap();
    env.run_until_idle().unwrap();
    match env.query("ship-3", BOOM, &()) {
        Err(Error::Query(QueryError::Panicked { message, .. })) => {
            assert!(message.contains("no such parcel"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    const NONE: QueryDef<(), ()> = QueryDef::new("none");
    match env.query("ship-3", NONE, &()) {
        Err(Error::Query(QueryError::UnknownQuery { registered, .. })) => {
            assert_eq!(registered, ["boom", "shipped"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        env.query("nobody", SHIPPED, &()),
        Err(Error::UnknownWorkflow(_))
    ));
    env.signal("ship-3", MORE, &0).unwrap();
    assert_eq!(env.result(&run).unwrap(), 1);
}

const ADD: reprise_sdk::UpdateDef<u32, u32> = reprise_sdk::UpdateDef::new("add");
const CHECKOUT: reprise_sdk::UpdateDef<(), u32> = reprise_sdk::UpdateDef::new("checkout");
const PRICE: ActivityDef<u32, u32> = ActivityDef::new("price");
/// A cart filled by updates until checkout; `add` prices through an activity and refuses 0.
const CART: WorkflowDef<(), u32> = WorkflowDef::new("cart");

async fn cart(ctx: WorkflowContext, (): ()) -> Result<u32, WorkflowError> {
    #[derive(Default)]
    struct Cart {
        total: u32,
        done: bool,
    }
    let cart = WorkflowState::new(Cart::default());
    ctx.validate_update(ADD, &cart, |_, n| {
        if *n == 0 {
            Err("nothing to add".into())
        } else {
            Ok(())
        }
    });
    let adding = cart.clone();
    ctx.on_update(ADD, move |ctx, n: u32| {
        let cart = adding.clone();
        async move {
            // Priced after a day: the update waits in virtual time.
            ctx.sleep(Duration::from_secs(86_400)).await?;
            let price = ctx.activity(PRICE, &n).await?;
            Ok(cart.update(|c| {
                c.total += price;
                c.total
            }))
        }
    });
    let closing = cart.clone();
    ctx.on_update(CHECKOUT, move |_, ()| {
        let cart = closing.clone();
        async move {
            Ok(cart.update(|c| {
                c.done = true;
                c.total
            }))
        }
    });
    let done = cart.clone();
    ctx.wait_until(move || done.read(|c| c.done)).await?;
    Ok(cart.read(|c| c.total))
}

fn cart_env() -> (TestEnv, reprise_testkit::StandIn<u32>) {
    let registry = Registry::builder()
        .workflow(CART, cart)
        .activity(
            PRICE,
            |_, n: u32| async move { Ok::<_, ActivityError>(n * 10) },
        )
        .build()
        .unwrap();
    let mut env = TestEnv::new(registry);
    let prices = env
        .stand_in(PRICE, |n: u32, _| Ok::<_, ActivityError>(n * 10))
        .unwrap();
    (env, prices)
}

#[test]
fn an_update_runs_its_handler_in_virtual_time_and_returns_its_result() {
    let (mut env, prices) = cart_env();
    let run = env.start(CART, "cart-1", &()).unwrap();
    let before = env.now();
    assert_eq!(env.update("cart-1", ADD, &3).unwrap(), 30);
    assert!(env.now().as_unix_micros() - before.as_unix_micros() >= 86_400_000_000);
    assert_eq!(env.update("cart-1", ADD, &4).unwrap(), 70);
    assert_eq!(env.update("cart-1", CHECKOUT, &()).unwrap(), 70);
    assert_eq!(env.result(&run).unwrap(), 70);
    assert_eq!(prices.count(), 2);
    assert!(matches!(
        env.update("cart-1", ADD, &1),
        Err(Error::Closed(_))
    ));
}

#[test]
fn a_refused_update_records_nothing_and_one_id_runs_once() {
    let (mut env, prices) = cart_env();
    env.start(CART, "cart-2", &()).unwrap();
    let events = env.history("cart-2").unwrap().events().len();
    match env.update("cart-2", ADD, &0) {
        Err(Error::UpdateRejected(reprise_sdk::UpdateRefusal::Rejected { reason, .. })) => {
            assert_eq!(reason, "nothing to add");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(env.history("cart-2").unwrap().events().len(), events);
    assert_eq!(env.update_with_id("cart-2", "tea", ADD, &2).unwrap(), 20);
    assert_eq!(env.update_with_id("cart-2", "tea", ADD, &2).unwrap(), 20);
    assert_eq!(prices.count(), 1, "the same id ran once");
}
