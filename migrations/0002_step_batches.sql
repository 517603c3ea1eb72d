-- Steps now run in batches, each run locked by its row lock for the batch's transaction (see
-- docs/ARCHITECTURE.md, "Steps"). Two lookups that every result wait makes got an index.

-- A run's continuation (continue-as-new): clients follow it to the last run's result; without
-- this index each lookup scanned every run.
CREATE INDEX runs_by_previous_run ON reprise.runs (previous_run_id)
    WHERE previous_run_id IS NOT NULL;
