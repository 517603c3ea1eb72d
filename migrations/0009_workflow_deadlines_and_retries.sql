-- Workflow deadlines (a run timeout and an execution timeout) and workflow retries.
--
-- A run with a deadline carries it here, not in its history: the engine enforces it and
-- records only what happened (`WorkflowTimedOut`, a retry's `RunOrigin::Retried`). The
-- options travel from run to run (continue-as-new, retry) through these columns.

-- A run closed by a deadline is 'timed_out'.
ALTER TABLE reprise.runs DROP CONSTRAINT runs_status_check;
ALTER TABLE reprise.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'cancelled', 'terminated',
                      'continued_as_new', 'timed_out'));

ALTER TABLE reprise.runs
    -- The run timeout, applied to every run of the workflow from its first step.
    ADD COLUMN run_timeout_micros bigint CHECK (run_timeout_micros > 0),
    -- The execution timeout's deadline: fixed at the first run's first step and kept by
    -- every run after it.
    ADD COLUMN execution_deadline timestamptz,
    -- The earlier of this run's run deadline and the execution deadline: when the engine
    -- closes it if it is still open.
    ADD COLUMN deadline timestamptz,
    -- The workflow's retry policy (`RetryPolicy` as JSON), kept by every run after it.
    ADD COLUMN retry_policy jsonb,
    -- Which attempt of the workflow this run is, from 1.
    ADD COLUMN attempt integer NOT NULL DEFAULT 1 CHECK (attempt >= 1);

-- The engines' deadline sweep: the open runs with a deadline, earliest first.
CREATE INDEX runs_deadlines ON reprise.runs (deadline)
    WHERE status = 'running' AND deadline IS NOT NULL;
