-- Replaces a schedule's spec, policies and action, and its state (binder `ScheduleRow`,
-- `store/schedules.rs`); the caller holds the row's lock and passes the state it moved on
-- to now. No row comes back if the schedule is gone. Wakes the engines.
--   $1 text                       schedule id
--   $2 text, $3 text              spec and policies, as JSON
--   $4 text, $5 text, $6 bytea    workflow type, task queue, encoded input
--   $7 smallint, $8 text          priority, fairness key (or NULL)
--   $9 text                       the state, as JSON
--   $10 timestamptz               when its next time is due (or NULL: never)
--   $11 timestamptz               now (database time)
--   $12 text                      the schedules channel
--   $13 text                      the workflow buffered firings wait for (or NULL)
--   $14 text                      the started workflows' deadlines and retry policy, as
--                                 JSON (or NULL: none)
WITH replaced AS (
         UPDATE reprise.schedules
            SET spec = $2::text::jsonb, policies = $3::text::jsonb, workflow_type = $4::text,
                task_queue = $5::text, input = $6::bytea, priority = $7::smallint,
                fairness_key = $8::text, state = $9::text::jsonb,
                next_fire_at = $10::timestamptz, updated_at = $11::timestamptz,
                waiting_on = $13::text, start_terms = $14::text::jsonb
          WHERE schedule_id = $1::text
         RETURNING schedule_id)
SELECT r.schedule_id, pg_notify($12::text, '')
  FROM replaced r
