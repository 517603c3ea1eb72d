//! **Trip booking saga.** A trip is a flight, a hotel and a car, booked with three companies
//! that share no transaction. If any booking fails — or the traveller cancels mid-way — the
//! bookings already made are cancelled, newest first, and the trip ends failed (or
//! cancelled) with nothing left booked.
//!
//! Run it: `cargo run -p reprise-examples -- saga`. The guide: `docs/patterns/saga.md`.

use std::time::Duration;

use reprise_history::{ActivityOptions, RetryPolicy};
use reprise_sdk::{ActivityContext, ActivityDef, ActivityError, OperationEnd, RegistryBuilder};
use reprise_sdk::{WorkflowContext, WorkflowDef, WorkflowError};
use serde::{Deserialize, Serialize};

/// Books a trip; fails (or is cancelled) with every booking it made undone.
pub const BOOK_TRIP: WorkflowDef<Trip, Itinerary> = WorkflowDef::new("book-trip");
/// Books a seat on a flight.
pub const BOOK_FLIGHT: ActivityDef<Booking, String> = ActivityDef::new("book-flight");
/// Books a hotel room (the hotel's system is slow: a few seconds).
pub const BOOK_HOTEL: ActivityDef<Booking, String> = ActivityDef::new("book-hotel");
/// Rents a car; the rental company has no cars in some cities.
pub const BOOK_CAR: ActivityDef<Booking, String> = ActivityDef::new("book-car");
/// Cancels a flight booking by its reference (nothing to do if there is none).
pub const CANCEL_FLIGHT: ActivityDef<String, ()> = ActivityDef::new("cancel-flight");
/// Cancels a hotel booking by its reference (nothing to do if there is none).
pub const CANCEL_HOTEL: ActivityDef<String, ()> = ActivityDef::new("cancel-hotel");
/// Cancels a car rental by its reference (nothing to do if there is none).
pub const CANCEL_CAR: ActivityDef<String, ()> = ActivityDef::new("cancel-car");

/// What the traveller asked for.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trip {
    /// Who travels.
    pub traveller: String,
    /// Where to.
    pub city: String,
    /// How many nights.
    pub nights: u32,
}

/// One booking request: the trip, and the reference the booking is made under.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Booking {
    /// Chosen by the workflow before the call, so a booking whose answer was lost (the worker
    /// died after the company said yes) can still be found and cancelled.
    pub reference: String,
    /// The trip.
    pub trip: Trip,
}

/// The confirmations of a booked trip.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Itinerary {
    /// The airline's confirmation.
    pub flight: String,
    /// The hotel's confirmation.
    pub hotel: String,
    /// The rental company's confirmation.
    pub car: String,
}

/// An undo step: the cancel activity and the reference it cancels.
type Compensation = (ActivityDef<String, ()>, String);

async fn book_trip(ctx: WorkflowContext, trip: Trip) -> Result<Itinerary, WorkflowError> {
    let mut compensations: Vec<Compensation> = Vec::new();
    match book_everything(&ctx, &trip, &mut compensations).await {
        Ok(itinerary) => Ok(itinerary),
        Err(error) => {
            // Newest first. A cancel request ended the pending booking; activities started
            // from here on run normally, so the undo steps run on a cancelled trip too.
            let mut not_undone = Vec::new();
            for (cancel, reference) in compensations.iter().rev() {
                let undo = ctx.activity(*cancel, reference).options(until_it_works());
                if let Err(failed) = undo.await {
                    // Undo the rest all the same; a person settles what could not be.
                    not_undone.push(format!("{reference} ({})", failed.failure.message));
                }
            }
            if !not_undone.is_empty() {
                return Err(WorkflowError::failed(
                    "NotUndone",
                    format!(
                        "the trip failed and these bookings could not be undone: {}",
                        not_undone.join(", ")
                    ),
                ));
            }
            Err(error)
        }
    }
}

async fn book_everything(
    ctx: &WorkflowContext,
    trip: &Trip,
    compensations: &mut Vec<Compensation>,
) -> Result<Itinerary, WorkflowError> {
    let steps = [
        (BOOK_FLIGHT, CANCEL_FLIGHT, "flight"),
        (BOOK_HOTEL, CANCEL_HOTEL, "hotel"),
        (BOOK_CAR, CANCEL_CAR, "car"),
    ];
    let mut confirmations = Vec::new();
    for (book, cancel, what) in steps {
        let reference = format!("{}-{what}", ctx.workflow_id());
        // Registered before the call: if the call fails after the company booked (a timeout,
        // a lost answer), the cancel still runs. Cancels of what was never booked do nothing.
        compensations.push((cancel, reference.clone()));
        let booking = Booking {
            reference,
            trip: trip.clone(),
        };
        match ctx.activity(book, &booking).await {
            Ok(confirmation) => confirmations.push(confirmation),
            // The company said no (a non-retryable refusal): nothing of this one to undo. A
            // timeout, a cancel, or retryable errors until the attempts ran out may have
            // booked all the same, so their undo stays.
            Err(refused) if refused.end == OperationEnd::Failed && !refused.failure.retryable => {
                compensations.pop();
                return Err(refused.into());
            }
            Err(other) => return Err(other.into()),
        }
    }
    let [flight, hotel, car] = <[String; 3]>::try_from(confirmations)
        .map_err(|_| WorkflowError::failed("Unreachable", "three bookings were made"))?;
    Ok(Itinerary { flight, hotel, car })
}

/// Undo steps are retried until they work: a trip half undone is worse than a late one.
fn until_it_works() -> ActivityOptions {
    ActivityOptions {
        retry: RetryPolicy {
            max_attempts: None,
            max_backoff: Duration::from_secs(60),
            ..RetryPolicy::default()
        },
        ..ActivityOptions::default()
    }
}

async fn book_flight(_: ActivityContext, booking: Booking) -> Result<String, ActivityError> {
    Ok(format!(
        "flight to {} ({})",
        booking.trip.city, booking.reference
    ))
}

async fn book_hotel(ctx: ActivityContext, booking: Booking) -> Result<String, ActivityError> {
    // The hotel's system takes a while. Heartbeats let a cancel of the trip reach this call
    // (at the next heartbeat) instead of waiting for it to finish.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctx.heartbeat(&())?;
        if ctx.is_cancelled() {
            return Err(ActivityError::non_retryable(
                "Cancelled",
                "the trip was cancelled",
            ));
        }
    }
    let nights = booking.trip.nights;
    Ok(format!(
        "{nights} nights in {} ({})",
        booking.trip.city, booking.reference
    ))
}

async fn book_car(_: ActivityContext, booking: Booking) -> Result<String, ActivityError> {
    if booking.trip.city == "Lisbon" {
        // Permanent: retrying will not make cars appear, so the saga should undo at once.
        return Err(ActivityError::non_retryable(
            "NoCarsAvailable",
            format!("no cars available in {} on those dates", booking.trip.city),
        ));
    }
    Ok(format!(
        "car in {} ({})",
        booking.trip.city, booking.reference
    ))
}

async fn cancel_booking(_: ActivityContext, reference: String) -> Result<(), ActivityError> {
    // A real company's API is asked to cancel `reference`; "no such booking" counts as done.
    tracing::info!(%reference, "booking cancelled");
    Ok(())
}

/// Registers the saga's workflow and activities.
pub fn register(builder: RegistryBuilder) -> RegistryBuilder {
    builder
        .workflow(BOOK_TRIP, book_trip)
        .activity(BOOK_FLIGHT, book_flight)
        .activity(BOOK_HOTEL, book_hotel)
        .activity(BOOK_CAR, book_car)
        .activity(CANCEL_FLIGHT, cancel_booking)
        .activity(CANCEL_HOTEL, cancel_booking)
        .activity(CANCEL_CAR, cancel_booking)
}

// ---- The demo: what `cargo run -p reprise-examples -- saga` does. ----

/// What the demo saw: each trip's activities in the order they ran.
#[derive(Debug)]
pub struct SagaOutcome {
    /// The trip whose car failed: its steps.
    pub car_failed: Vec<super::demo::Step>,
    /// The trip the traveller cancelled: its steps.
    pub cancelled: Vec<super::demo::Step>,
}

/// Books a trip to Lisbon (no cars: undone) and one to Porto that the traveller cancels while
/// the hotel is being booked (undone too).
pub async fn demo(demo: &super::demo::Demo) -> anyhow::Result<SagaOutcome> {
    use super::demo::{print_steps, steps_of, wait_for_running};
    let client = demo.client();
    let suffix = super::demo::unique_suffix();
    let trip = |city: &str| Trip {
        traveller: "Ada".to_string(),
        city: city.to_string(),
        nights: 3,
    };

    let lisbon = format!("trip-lisbon-{suffix}");
    println!("booking {lisbon}: flight, hotel, car to Lisbon (the rental company has no cars)");
    let handle = client.start(BOOK_TRIP, &lisbon, &trip("Lisbon")).await?;
    match handle.result().await {
        Ok(itinerary) => println!("  booked?! {itinerary:?}"),
        Err(e) => println!("  {lisbon} failed: {e}"),
    }
    let car_failed = steps_of(client, handle.run_id()).await?;
    print_steps(&car_failed);

    let porto = format!("trip-porto-{suffix}");
    println!("booking {porto}; the traveller cancels while the hotel is being booked");
    let handle = client.start(BOOK_TRIP, &porto, &trip("Porto")).await?;
    wait_for_running(client, &porto, BOOK_HOTEL.name()).await?;
    client.cancel(&porto, "the traveller changed plans").await?;
    println!("  (the same from a shell: reprise cancel {porto} --reason 'changed plans')");
    match handle.result().await {
        Ok(itinerary) => println!("  booked before the cancel arrived: {itinerary:?}"),
        Err(e) => println!("  {porto}: {e}"),
    }
    let cancelled = steps_of(client, handle.run_id()).await?;
    print_steps(&cancelled);
    Ok(SagaOutcome {
        car_failed,
        cancelled,
    })
}
