use reprise_examples::patterns::demo::{Step, StepEnd};
use reprise_examples::patterns::saga;

use crate::support::TestDb;

fn step(activity: &str, end: StepEnd) -> Step {
    Step {
        activity: activity.to_string(),
        end: Some(end),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookings_are_undone_newest_first_when_the_car_fails_and_when_the_traveller_cancels() {
    let db = TestDb::migrated().await;
    let demo = super::demo_on(&db, false).await;
    let outcome = super::within(saga::demo(&demo)).await.unwrap();
    use StepEnd::{Cancelled, Completed, Failed};
    // The car company said no: nothing of it to undo; hotel, then flight.
    assert_eq!(
        outcome.car_failed,
        vec![
            step("book-flight", Completed),
            step("book-hotel", Completed),
            step("book-car", Failed),
            step("cancel-hotel", Completed),
            step("cancel-flight", Completed),
        ]
    );
    // Cancelled while the hotel was booking: the hotel may have booked, so it is undone too.
    assert_eq!(
        outcome.cancelled,
        vec![
            step("book-flight", Completed),
            step("book-hotel", Cancelled),
            step("cancel-hotel", Completed),
            step("cancel-flight", Completed),
        ]
    );
    demo.stop().await.unwrap();
    db.drop_database().await;
}
