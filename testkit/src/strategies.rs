//! Proptest strategies for users' own workflow tests.
//!
//! Every history type has a strategy in [`reprise_history::strategies`] (re-exported here);
//! [`completion_orders`] draws seeds for [`crate::TestEnv::with_order_seed`].

use proptest::prelude::*;

pub use reprise_history::strategies::*;

/// Seeds of activity completion orders, for `TestEnv::with_order_seed` and
/// `check_determinism`.
pub fn completion_orders() -> impl Strategy<Value = u64> {
    any::<u64>()
}
