-- Talking to running workflows (see docs/ARCHITECTURE.md, "Updates" and "Queries and custom
-- status"): the custom status each run last published, the queries waiting for an engine's
-- answer, and the updates sent to runs with where each stands.

-- A run's custom status (`ctx.set_status`): the last value set, encoded by the registry's
-- converter, written by the step that set it, and when. Not history: only the last value is
-- kept. Columns of the runs row, written by the statement that releases the run: a step that
-- sets none leaves them as they are at no cost, and no column an index covers changes, so
-- the update stays heap-only. (A table of its own cost every step statement an insert's
-- setup, about a sixth of W2's throughput, measured.) Nullable with no default: adding them
-- rewrites nothing.
ALTER TABLE reprise.runs
    ADD COLUMN custom_status bytea,
    ADD COLUMN custom_status_at timestamptz;

-- Queries asked and not yet read back. A client inserts one and notifies the engines on
-- `reprise_queries` (with no payload: nothing here is ever sent over NOTIFY); an engine that
-- runs the workflow's type takes it, answers from its cached orchestrator or by replaying the
-- run's history, writes the answer and notifies `reprise_answers` with the query's id.
-- The asker deletes the row once it has read it (or given up); engines delete rows left past
-- their expiry. Queries are transient, so the table is UNLOGGED: a database crash loses the
-- queries in flight, whose askers then time out, and costs no WAL on the way.
CREATE UNLOGGED TABLE reprise.queries (
    query_id      uuid        PRIMARY KEY,
    run_id        uuid        NOT NULL,
    workflow_type text        NOT NULL,
    name          text        NOT NULL,
    input         bytea       NOT NULL,
    asked_at      timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    -- Set when an engine takes the query: no other engine answers it.
    taken_at      timestamptz,
    answered_at   timestamptz,
    -- The answer, or why there is none (`error_kind` as `QueryRefusal::kind` names it).
    answer        bytea,
    error_kind    text,
    error_message text,
    registered    text[]
);

CREATE INDEX queries_waiting ON reprise.queries (asked_at) WHERE taken_at IS NULL;

-- Updates sent to runs, one row per (run, update id): what makes an update idempotent (a
-- second request with the same id waits for the first one's outcome) and where its caller
-- reads the outcome, on whichever engine the run was finished. The update itself travels to
-- the run as an inbox input; the step that takes it writes here (accepted with the seq of its
-- `UpdateAccepted`, or refused with the reason: a refused update is never recorded in
-- history), and the step whose handler returns writes the outcome; each notifies
-- `reprise_answers` with the run's id. Rows go with their run (retention).
CREATE TABLE reprise.updates (
    run_id          uuid        NOT NULL REFERENCES reprise.runs (run_id) ON DELETE CASCADE,
    update_id       text        NOT NULL,
    name            text        NOT NULL,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    state           text        NOT NULL DEFAULT 'requested'
                    CHECK (state IN ('requested', 'accepted', 'completed', 'rejected')),
    accepted_seq    bigint,
    finished_at     timestamptz,
    -- Completed: the handler's result, or its failure (`Failure` as stored).
    result          bytea,
    failure         bytea,
    -- Rejected: why (`UpdateRefusal` as `store/updates.rs` names it).
    refusal_kind    text,
    refusal_message text,
    registered      text[],
    PRIMARY KEY (run_id, update_id)
);
