-- Creates a schedule, unless one of its id exists: then no row comes back (binder
-- `ScheduleRow`, `store/schedules.rs`), and the engines are woken to look at what is due.
--   $1 text                       schedule id
--   $2 text, $3 text              spec and policies, as JSON
--   $4 text, $5 text, $6 bytea    workflow type, task queue, encoded input
--   $7 smallint, $8 text          priority, fairness key (or NULL)
--   $9 text                       the state, as JSON
--   $10 timestamptz               when its first time is due (or NULL: never)
--   $11 timestamptz               now (database time)
--   $12 text                      the schedules channel
--   $13 text                      the started workflows' deadlines and retry policy, as
--                                 JSON (or NULL: none)
WITH created AS (
         INSERT INTO reprise.schedules (schedule_id, spec, policies, workflow_type, task_queue,
                                        input, priority, fairness_key, state, next_fire_at,
                                        created_at, updated_at, start_terms)
         VALUES ($1::text, $2::text::jsonb, $3::text::jsonb, $4::text, $5::text, $6::bytea,
                 $7::smallint, $8::text, $9::text::jsonb, $10::timestamptz, $11::timestamptz,
                 $11::timestamptz, $13::text::jsonb)
         ON CONFLICT (schedule_id) DO NOTHING
         RETURNING schedule_id)
SELECT c.schedule_id, pg_notify($12::text, '')
  FROM created c
