//! Binding a statement's parameters: each statement of many parameters has one binder (a
//! struct whose fields are its parameters, in order) that binds them all through [`Bound`],
//! which remembers the type of each. `hot_statements` hands every binder's bound types to a
//! test that prepares the statement on PostgreSQL and compares them with the types the server
//! infers, parameter by parameter: a binder that binds one too many, one too few, or one of
//! the wrong type fails that test, not production.

use sqlx::postgres::{PgArguments, PgTypeInfo};
use sqlx::{Encode, Postgres, Type};

use crate::store::reset::InsertResetRun;
use crate::store::rows::{HistoryRows, INSERT_HISTORY_SQL};
use crate::store::runs::{InsertRun, StartRuns};
use crate::store::schedules::ScheduleRow;
use crate::store::step::{
    Claim, ClaimRuns, InsertTasks, StepDirectly, WriteAndRelease, WriteSteps, hinted_input,
    hinted_start, read_histories,
};
use crate::store::tasks::{ClaimTasks, FinishTasks};

/// A query with PostgreSQL arguments.
pub(crate) type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// A statement and its parameters bound so far, with their types.
pub(crate) struct Bound<'q> {
    sql: &'static str,
    query: PgQuery<'q>,
    types: Vec<PgTypeInfo>,
}

impl<'q> Bound<'q> {
    /// The statement `sql`, with nothing bound yet.
    pub(crate) fn new(sql: &'static str) -> Bound<'q> {
        Bound {
            sql,
            query: sqlx::query(sql),
            types: Vec::new(),
        }
    }

    /// Binds the next parameter.
    pub(crate) fn bind<T>(mut self, value: T) -> Bound<'q>
    where
        T: 'q + Encode<'q, Postgres> + Type<Postgres>,
    {
        self.types.push(T::type_info());
        self.query = self.query.bind(value);
        self
    }

    /// The query, to run.
    pub(crate) fn query(self) -> PgQuery<'q> {
        self.query
    }

    fn into_statement(self, name: &'static str) -> BoundStatement {
        BoundStatement {
            name,
            sql: self.sql,
            parameter_oids: self.types.iter().map(|t| t.oid().map(|o| o.0)).collect(),
        }
    }
}

/// A statement of the store as its binder binds it (not part of the API: for the engine's
/// tests, which prepare it on PostgreSQL and compare).
#[derive(Clone, Debug)]
pub struct BoundStatement {
    /// What it does.
    pub name: &'static str,
    /// The statement, as the store sends it.
    pub sql: &'static str,
    /// The type of each parameter as the binder binds it (`pg_type` oids; `None` for a type
    /// that has no fixed oid).
    pub parameter_oids: Vec<Option<u32>>,
}

/// Every statement of the store that has a binder, bound with empty rows.
pub fn bound_statements() -> Vec<BoundStatement> {
    let claim = |claim| ClaimRuns {
        offset: 0,
        known_types: &[],
        build: "",
        claim,
        queues: &[],
    };
    let claim_tasks = ClaimTasks {
        offset: 0,
        queues: &[],
        limit: 1,
        owner: "",
        activity_types: &[],
    };
    let history = HistoryRows::default().bind_to(Bound::new(INSERT_HISTORY_SQL));
    vec![
        claim(Claim::Ready(1))
            .bind()
            .into_statement("claim ready runs"),
        claim(Claim::Only(&[]))
            .bind()
            .into_statement("claim given runs"),
        read_histories(&[]).into_statement("read histories"),
        WriteSteps::default().bind().into_statement("write steps"),
        WriteAndRelease::default()
            .bind()
            .into_statement("write steps and release runs"),
        StepDirectly::default()
            .bind()
            .into_statement("step one run directly"),
        hinted_start(0, reprise_history::RunId::random())
            .into_statement("read a started run's first event"),
        hinted_input(0, reprise_history::RunId::random(), 0)
            .into_statement("read a delivered input"),
        FinishTasks::default()
            .bind()
            .into_statement("record outcomes"),
        claim_tasks.bind().into_statement("claim tasks"),
        claim_tasks
            .bind_held_back()
            .into_statement("claim tasks held back by limits"),
        InsertTasks::default().bind().into_statement("insert tasks"),
        history.into_statement("append history"),
        InsertRun::default().bind().into_statement("insert a run"),
        StartRuns::default().bind().into_statement("start runs"),
        InsertResetRun::default()
            .bind()
            .into_statement("insert a reset run"),
        ScheduleRow::default()
            .bind_insert()
            .into_statement("create a schedule"),
        ScheduleRow::default()
            .bind_replace()
            .into_statement("replace a schedule"),
    ]
}
