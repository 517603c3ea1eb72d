-- Creates activity tasks, due now (a reset re-opening the activities its history left open;
-- binder `InsertTasks`). Steps create theirs inside `write_steps*.sql` and `step_directly.sql`.
--   $1 bigint                         clock offset in µs (see `reprise.db_now`)
--   $2..$10 uuid[] bigint[] text[] text[] bytea[] bytea[] bigint[] bigint[] bigint[]
--                                     tasks: run, scheduled seq, queue, activity type, input,
--                                     options, start-to-close, heartbeat, schedule-to-close (µs)
--   $11 text[], $12 text[]            tasks: the trace context of the step that scheduled each
--                                     (traceparent, tracestate; NULL: not traced)
--   $13 smallint[]                    tasks: the priority given at the call (NULL: the run's)
WITH new_tasks AS (
         SELECT * FROM UNNEST($2::uuid[], $3::bigint[], $4::text[], $5::text[], $6::bytea[],
                              $7::bytea[], $8::bigint[], $9::bigint[], $10::bigint[],
                              $11::text[], $12::text[], $13::smallint[])
             AS t(run_id, seq, queue, kind, input, options, stc, hb, s2c, traceparent,
                  tracestate, priority))
-- A task takes its run's fairness key, and its priority unless its call gave one (see
-- `reprise.claim_tasks`).
INSERT INTO reprise.activity_tasks (run_id, scheduled_seq, task_queue, activity_type,
            input, options, start_to_close_micros, heartbeat_timeout_micros,
            scheduled_at, visible_at, schedule_to_close_deadline, traceparent, tracestate,
            priority, fairness_key)
SELECT t.run_id, t.seq, t.queue, t.kind, t.input, t.options, t.stc, t.hb,
       reprise.db_now($1), reprise.db_now($1),
       reprise.db_now($1) + t.s2c * interval '1 microsecond', t.traceparent, t.tracestate,
       COALESCE(t.priority, o.priority), o.fairness_key
  FROM new_tasks t CROSS JOIN LATERAL (
         SELECT o.priority, o.fairness_key FROM reprise.runs o
          WHERE o.run_id = t.run_id LIMIT 1) o
