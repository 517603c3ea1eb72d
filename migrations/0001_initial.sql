-- Reprise's initial schema: runs, their append-only history, the inbox that feeds them and
-- the activity tasks that workers claim. See docs/ARCHITECTURE.md ("Storage") and DESIGN.md.
-- Migrations are never edited after they land: change the schema with a new file.
-- Every time below is database time: leases, timers and retries never use a worker's clock.

CREATE SCHEMA IF NOT EXISTS reprise;

-- One row per run. The lease columns implement the single-writer rule: only the holder of
-- the current lease_token may append to the run's history.
CREATE TABLE reprise.runs (
    run_id           uuid        PRIMARY KEY,
    workflow_id      text        NOT NULL,
    workflow_type    text        NOT NULL,
    task_queue       text        NOT NULL,
    status           text        NOT NULL DEFAULT 'running'
                     CHECK (status IN ('running', 'completed', 'failed', 'cancelled',
                                       'terminated', 'continued_as_new')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    closed_at        timestamptz,
    -- The last event appended and its chain hash: blake3(previous hash || event bytes).
    head_seq         bigint      NOT NULL CHECK (head_seq >= 1),
    head_hash        bytea       NOT NULL CHECK (octet_length(head_hash) = 32),
    -- The last input the orchestrator applied (its decisions follow it in history); 0 until
    -- the first step applies WorkflowStarted.
    applied_seq      bigint      NOT NULL DEFAULT 0 CHECK (applied_seq >= 0),
    -- When the run next has work (an inbox row becomes visible); NULL when it has none.
    ready_at         timestamptz,
    -- Lease of the engine process stepping the run; the token fences late writers.
    lease_owner      text,
    lease_token      bigint      NOT NULL DEFAULT 0,
    lease_expires_at timestamptz,
    -- A run whose code is nondeterministic or whose type no process knows waits here.
    parked_at        timestamptz,
    parked_reason    text,
    -- The build that parked it: the same code would fail the same way, so only another build
    -- (or one that knows the workflow type) picks it up again.
    parked_build     text,
    parent_run_id    uuid,
    -- For a child: the seq of the parent's ChildWorkflowStarted, and what happens to the child
    -- when the parent closes first ('terminate', 'request_cancel' or 'abandon').
    parent_started_seq  bigint,
    parent_close_policy text CHECK (parent_close_policy IN ('terminate', 'request_cancel', 'abandon')),
    previous_run_id  uuid,
    CHECK ((status = 'running') = (closed_at IS NULL)),
    CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL)),
    CHECK ((parked_reason IS NULL) = (parked_at IS NULL))
);

-- At most one open run per workflow id; starting a duplicate fails with unique_violation.
CREATE UNIQUE INDEX runs_one_open_run_per_workflow_id
    ON reprise.runs (workflow_id) WHERE status = 'running';
-- Lookups by workflow id (latest run first): client handles, signals, describe.
CREATE INDEX runs_by_workflow_id ON reprise.runs (workflow_id, created_at DESC);
-- Claim: unleased runs whose work is due.
CREATE INDEX runs_ready ON reprise.runs (ready_at)
    WHERE ready_at IS NOT NULL AND lease_owner IS NULL;
-- Claim: runs whose lease ran out (their holder died).
CREATE INDEX runs_lease_expiry ON reprise.runs (lease_expires_at) WHERE lease_owner IS NOT NULL;
-- Listing by status with keyset paging.
CREATE INDEX runs_by_status ON reprise.runs (status, created_at DESC, run_id DESC);
-- Parked runs, oldest first.
CREATE INDEX runs_parked ON reprise.runs (parked_at) WHERE parked_reason IS NOT NULL;
-- Children of a run (parent-close policy).
CREATE INDEX runs_by_parent ON reprise.runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
-- Retention: closed runs, oldest first.
CREATE INDEX runs_closed ON reprise.runs (closed_at) WHERE closed_at IS NOT NULL;

-- The history of each run: encoded events (format byte + bincode), each with its chain hash.
-- Rows are only ever inserted; the trigger below refuses UPDATE, TRUNCATE, and DELETE except
-- by retention of a closed run.
CREATE TABLE reprise.history (
    run_id      uuid        NOT NULL REFERENCES reprise.runs (run_id),
    seq         bigint      NOT NULL CHECK (seq >= 1),
    recorded_at timestamptz NOT NULL,
    kind        text        NOT NULL,
    event       bytea       NOT NULL,
    hash        bytea       NOT NULL CHECK (octet_length(hash) = 32),
    PRIMARY KEY (run_id, seq)
);

CREATE FUNCTION reprise.guard_history() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('reprise.retention', true) = 'on' THEN
        IF EXISTS (SELECT 1 FROM reprise.runs WHERE run_id = OLD.run_id AND status = 'running') THEN
            RAISE EXCEPTION 'retention may not delete the history of open run %', OLD.run_id
                USING ERRCODE = 'RH001';
        END IF;
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'reprise.history is append-only: % refused', TG_OP
        USING ERRCODE = 'RH001',
              HINT = 'history rows are deleted only by retention, with reprise.retention set, for closed runs';
END
$$;

CREATE TRIGGER history_is_append_only
    BEFORE UPDATE OR DELETE ON reprise.history
    FOR EACH ROW EXECUTE FUNCTION reprise.guard_history();
CREATE TRIGGER history_is_never_truncated
    BEFORE TRUNCATE ON reprise.history
    FOR EACH STATEMENT EXECUTE FUNCTION reprise.guard_history();

-- Everything from outside a run (activity results, timer firings, signals, cancel requests)
-- lands here first; the lease holder moves visible rows into history as input events.
-- A timer is a row whose visible_at is its fire time.
CREATE TABLE reprise.inbox (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id     uuid        NOT NULL REFERENCES reprise.runs (run_id),
    visible_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    kind       text        NOT NULL,
    event      bytea       NOT NULL,
    -- Makes a result idempotent: one row per (run, key), e.g. one outcome per activity.
    dedupe_key text,
    UNIQUE (run_id, dedupe_key)
);
-- A step reads its run's visible rows in arrival order.
CREATE INDEX inbox_by_run ON reprise.inbox (run_id, visible_at, id);

-- One row per scheduled activity until its outcome is recorded. Retries, backoff and
-- timeouts live here; history records only the outcome and the attempt count.
CREATE TABLE reprise.activity_tasks (
    run_id             uuid        NOT NULL REFERENCES reprise.runs (run_id),
    scheduled_seq      bigint      NOT NULL CHECK (scheduled_seq >= 1),
    task_queue         text        NOT NULL,
    activity_type      text        NOT NULL,
    input              bytea       NOT NULL,
    options            bytea       NOT NULL,
    -- From the options, so that claims can size each lease in SQL.
    start_to_close_micros    bigint,
    heartbeat_timeout_micros bigint,
    attempt            integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    scheduled_at       timestamptz NOT NULL DEFAULT now(),
    visible_at         timestamptz NOT NULL DEFAULT now(),
    schedule_to_close_deadline timestamptz,
    lease_owner        text,
    lease_token        bigint      NOT NULL DEFAULT 0,
    lease_expires_at   timestamptz,
    heartbeat_at       timestamptz,
    heartbeat_details  bytea,
    last_failure       bytea,
    cancel_requested   boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, scheduled_seq),
    CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
);
-- Claim: unleased tasks of a queue whose next attempt is due.
CREATE INDEX activity_tasks_claimable ON reprise.activity_tasks (task_queue, visible_at)
    WHERE lease_owner IS NULL;
-- Claim: attempts whose lease ran out (start-to-close or heartbeat timeout, dead worker).
CREATE INDEX activity_tasks_lease_expiry ON reprise.activity_tasks (lease_expires_at)
    WHERE lease_owner IS NOT NULL;
-- Schedule-to-close deadlines.
CREATE INDEX activity_tasks_deadline ON reprise.activity_tasks (schedule_to_close_deadline)
    WHERE schedule_to_close_deadline IS NOT NULL;

-- Patch markers each run recorded (`ctx.patched(id)` taking the new branch), so operators can
-- tell when no open run can still need a patch's old branch and it may be deprecated.
CREATE TABLE reprise.run_patches (
    run_id   uuid   NOT NULL REFERENCES reprise.runs (run_id),
    patch_id text   NOT NULL,
    seq      bigint NOT NULL,
    PRIMARY KEY (run_id, patch_id)
);
CREATE INDEX run_patches_by_patch ON reprise.run_patches (patch_id);
