-- Writes what a batch's steps have in common, alone: their events with chain hashes, the
-- tasks of the activities they scheduled, and the deletion of the inputs they applied
-- (`StepBatch::commit`, binder `WriteSteps`). Used only when a decision needs these rows
-- first (cancelling an activity needs its task; a continue-as-new hands the next run only
-- the inputs its run did not apply); otherwise `write_steps_and_release.sql` writes them.
--   $1 bigint                         clock offset in µs (see `reprise.db_now`)
--   $2..$7 uuid[] bigint[] timestamptz[] text[] bytea[] bytea[]
--                                     events: run, seq, recorded at, kind, bytes, chain hash
--   $8..$16 uuid[] bigint[] text[] text[] bytea[] bytea[] bigint[] bigint[] bigint[]
--                                     tasks: run, scheduled seq, queue, activity type, input,
--                                     options, start-to-close, heartbeat, schedule-to-close (µs)
--   $17 text[], $18 text[]            tasks: the trace context of the step that scheduled each
--                                     (traceparent, tracestate; NULL: not traced)
--   $19 bigint[]                      the inbox rows applied
--   $20 smallint[]                    tasks: the priority given at the call (NULL: the run's)
-- Rules it keeps: the caller holds every run's row lock (runs before tasks and inbox rows).
WITH appended AS (
         INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
         SELECT * FROM UNNEST($2::uuid[], $3::bigint[], $4::timestamptz[], $5::text[],
                              $6::bytea[], $7::bytea[])),
     new_tasks AS (
         SELECT * FROM UNNEST($8::uuid[], $9::bigint[], $10::text[], $11::text[], $12::bytea[],
                              $13::bytea[], $14::bigint[], $15::bigint[], $16::bigint[],
                              $17::text[], $18::text[], $20::smallint[])
             AS t(run_id, seq, queue, kind, input, options, stc, hb, s2c, traceparent,
                  tracestate, priority)),
     created AS (
         -- A task takes its run's fairness key, and its priority unless its call gave one
         -- (see `reprise.claim_tasks`).
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
                 WHERE o.run_id = t.run_id LIMIT 1) o),
     applied AS (DELETE FROM reprise.inbox WHERE id = ANY($19))
SELECT 1
