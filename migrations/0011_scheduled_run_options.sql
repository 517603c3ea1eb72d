-- The deadlines and retry policy of the workflows a schedule starts (`ScheduleAction`'s
-- `run_timeout`, `execution_timeout`, `retry`), as JSON; NULL when it sets none. Nullable with
-- no default: adding it rewrites nothing.
ALTER TABLE reprise.schedules ADD COLUMN start_terms jsonb;
