-- Schedules (see docs/ARCHITECTURE.md, "Schedules"): when each fires, what it starts, and
-- how far it has got. Any engine fires any schedule: a tick locks the schedule's row
-- (`FOR UPDATE SKIP LOCKED`), works out what is due with `reprise-schedule`'s pure tick, starts
-- the runs and writes the row back, all in one transaction. A tick that dies rolls back whole;
-- one that commits moved the row past what it fired. The started workflow's id is derived
-- from the schedule id and the scheduled time and is never reused, so a firing cannot start
-- twice even if a tick's effects were somehow repeated.
CREATE TABLE reprise.schedules (
    schedule_id   text        PRIMARY KEY,
    -- `reprise_schedule::ScheduleSpec` and `SchedulePolicies`, as JSON (durations in ms).
    spec          jsonb       NOT NULL,
    policies      jsonb       NOT NULL,
    -- What each firing starts; `input` encoded by the creating client's data converter.
    workflow_type text        NOT NULL,
    task_queue    text        NOT NULL,
    input         bytea       NOT NULL,
    priority      smallint    NOT NULL CHECK (priority BETWEEN 1 AND 9),
    fairness_key  text,
    paused        boolean     NOT NULL DEFAULT false,
    -- Why it was last paused or resumed.
    note          text,
    -- `reprise_schedule::ScheduleState` as JSON: the cursor, buffered firings, the workflow
    -- the overlap policy watches, counts, recent actions.
    state         jsonb       NOT NULL,
    -- When its next time is due, jitter included; NULL once its spec never fires again.
    next_fire_at  timestamptz,
    -- The watched workflow while firings wait for it to close; NULL when none wait.
    waiting_on    text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- What the engines' scheduler loops read: the earliest due schedule, and the schedules whose
-- buffered firings wait for a workflow. Idle schedules cost an entry in the first index and
-- nothing else.
CREATE INDEX schedules_due ON reprise.schedules (next_fire_at) WHERE NOT paused;
CREATE INDEX schedules_waiting ON reprise.schedules (waiting_on) WHERE waiting_on IS NOT NULL;

-- Delayed starts (`StartOptions::start_delay` / `start_at`): the run exists from its start
-- (visible, cancellable, taking signals into its inbox) but its queue row is due only at this
-- time, and every delivery before it keeps it so (`GREATEST` in `mark_ready`): its first step,
-- which takes what arrived meanwhile, happens then. NULL for a run that starts at once.
-- Nullable with no default: adding it rewrites nothing.
ALTER TABLE reprise.runs ADD COLUMN start_at timestamptz;
