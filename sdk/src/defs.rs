//! Typed handles: a workflow, activity, signal or query is named once, in a `const`, and used by
//! that name everywhere with its input and output types checked by the compiler.
//!
//! ```
//! use reprise_sdk::{ActivityDef, QueryDef, SignalDef, WorkflowDef};
//!
//! const CHARGE: ActivityDef<u64, String> = ActivityDef::new("charge");
//! const ORDER: WorkflowDef<String, String> = WorkflowDef::new("order");
//! const APPROVE: SignalDef<bool> = SignalDef::new("approve");
//! const PROGRESS: QueryDef<(), u32> = QueryDef::new("progress");
//! assert_eq!(CHARGE.name(), "charge");
//! ```

use std::fmt;
use std::marker::PhantomData;

/// A workflow type with input `I` and output `O`.
pub struct WorkflowDef<I, O> {
    name: &'static str,
    types: PhantomData<fn(I) -> O>,
}

/// An activity type with input `I` and output `O`.
pub struct ActivityDef<I, O> {
    name: &'static str,
    types: PhantomData<fn(I) -> O>,
}

/// A signal carrying a `T`.
pub struct SignalDef<T> {
    name: &'static str,
    types: PhantomData<fn(T)>,
}

/// An update taking `I` and answering `O`: handled by the workflow, which may do work first
/// (see [`crate::WorkflowContext::on_update`]).
pub struct UpdateDef<I, O> {
    name: &'static str,
    types: PhantomData<fn(I) -> O>,
}

/// A query taking `I` and answering `O`: read-only, answered from the workflow's state
/// (see [`crate::WorkflowContext::on_query`]).
pub struct QueryDef<I, O> {
    name: &'static str,
    types: PhantomData<fn(I) -> O>,
}

macro_rules! def_common {
    ($ty:ident < $($p:ident),* >, $what:literal) => {
        impl<$($p),*> $ty<$($p),*> {
            #[doc = concat!("Names a ", $what, ". The name is what history records: keep it stable.")]
            pub const fn new(name: &'static str) -> Self {
                $ty { name, types: PhantomData }
            }

            /// The recorded name.
            pub const fn name(&self) -> &'static str {
                self.name
            }
        }

        impl<$($p),*> Clone for $ty<$($p),*> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<$($p),*> Copy for $ty<$($p),*> {}

        impl<$($p),*> fmt::Debug for $ty<$($p),*> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), self.name)
            }
        }
    };
}

def_common!(WorkflowDef<I, O>, "workflow type");
def_common!(ActivityDef<I, O>, "activity type");
def_common!(SignalDef<T>, "signal");
def_common!(QueryDef<I, O>, "query");
def_common!(UpdateDef<I, O>, "update");
