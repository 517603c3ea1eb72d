-- Activities' schedule-to-start timeout: how long an attempt may wait to be taken by a worker.
--
-- Set, by a statement of its own, only on the tasks of activities that have the timeout: the
-- step statements that write tasks are unchanged. A retry (after a failed attempt, a lost
-- lease or a hand back) moves the deadline to the next attempt's due time plus the timeout.

ALTER TABLE reprise.activity_tasks
    -- The timeout, kept for the next attempts' deadlines.
    ADD COLUMN schedule_to_start_micros bigint CHECK (schedule_to_start_micros > 0),
    -- When the attempt now waiting must have been taken.
    ADD COLUMN start_deadline timestamptz;

-- The reaper's look for attempts nobody took in time: only waiting attempts with a deadline
-- (a claim sets the lease, which takes the row out of the index).
CREATE INDEX activity_tasks_start_deadline ON reprise.activity_tasks (start_deadline)
    WHERE start_deadline IS NOT NULL AND lease_owner IS NULL;
