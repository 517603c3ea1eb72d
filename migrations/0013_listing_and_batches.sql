-- Finding runs (issue 23). A listing is one scan per status of `runs_by_status`, merged
-- (engine/src/store/listing.rs); a filter on a workflow type walks this index instead, so that
-- a type with few runs among millions is found without reading the others. It is the one index
-- the web UI adds to the write path (one entry per run, written at its start and its close);
-- `docs/performance.md` has its cost.
CREATE INDEX runs_by_type ON reprise.runs (workflow_type, status, created_at DESC, run_id DESC);

-- Bulk operations: cancel, terminate, retry parked or signal every run a filter
-- matches, in chunks, resumable from any process. A batch row is the operation's whole state:
-- what it does, the filter, and the cursor it has reached. Each chunk's actions and the
-- cursor's advance commit together under the row's lock, so a batch interrupted anywhere is
-- resumed where it stopped, two processes resuming it take turns, and a signal broadcast
-- reaches each run once (its inbox dedupe key names the batch).
CREATE TABLE reprise.batches (
    batch_id          uuid        PRIMARY KEY,
    -- cancel | terminate | retry_parked | signal
    action            text        NOT NULL
        CHECK (action IN ('cancel', 'terminate', 'retry_parked', 'signal')),
    -- The filter as JSON (engine/src/store/batches.rs), its `created_before` no later than
    -- the batch's creation: runs started afterwards are not the batch's.
    filter            jsonb       NOT NULL,
    -- The cancel or terminate reason.
    reason            text        NOT NULL DEFAULT '',
    signal_name       text,
    -- The signal's payload, encoded as the client's codecs encode it.
    signal_payload    bytea,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    finished_at       timestamptz,
    -- The last run handled, oldest first (created_at, run_id); NULL: none yet.
    cursor_created_at timestamptz,
    cursor_run_id     uuid,
    -- How many runs matched when it was created, and what became of those handled so far.
    matched           bigint      NOT NULL,
    done              bigint      NOT NULL DEFAULT 0,
    skipped           bigint      NOT NULL DEFAULT 0,
    failed            bigint      NOT NULL DEFAULT 0,
    last_error        text,
    CHECK ((action = 'signal') = (signal_name IS NOT NULL)),
    CHECK ((cursor_created_at IS NULL) = (cursor_run_id IS NULL))
);

CREATE INDEX batches_by_created ON reprise.batches (created_at DESC);

-- Bulk operations are an operator's; observers (the web UI's reads) see their progress.
GRANT SELECT, INSERT, UPDATE ON reprise.batches TO reprise_operator;
GRANT SELECT ON reprise.batches TO reprise_observer;
