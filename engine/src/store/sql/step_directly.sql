-- Writes one run's step if, and only if, the run is as the step assumed (`Store::step_direct`,
-- binder `StepDirectly`; see `store/step/direct.rs`). Returns whether the fence held.
--   $1 bigint                         clock offset in µs (see `reprise.db_now`)
--   $2..$7 uuid[] bigint[] timestamptz[] text[] bytea[] bytea[]
--                                     events: run, seq, recorded at, kind, bytes, chain hash
--   $8..$16 uuid[] bigint[] text[] text[] bytea[] bytea[] bigint[] bigint[] bigint[]
--                                     tasks: run, scheduled seq, queue, activity type, input,
--                                     options, start-to-close, heartbeat, schedule-to-close (µs)
--   $17 text[], $18 text[]            tasks: the trace context of the step that scheduled each
--                                     (traceparent, tracestate; NULL: not traced)
--   $19 bigint[]                      the inbox rows the step applied, sorted
--   $20 uuid, $21 bigint, $22 bytea   the run and the head it was stepped from (seq, hash)
--   $23 bigint, $24 bytea             its new head (seq, hash)
--   $25 text                          the status it closes with (NULL: stays open)
--   $26 text[], $27 text[]            notifications: channels, payloads
--   $28 smallint[]                    tasks: the priority given at the call (NULL: the run's)
--   $29 bytea                         the custom status the step set (NULL: unchanged)
-- Rules it keeps:
-- * Fencing: `fence` takes the run's row lock, skipping a run another transaction holds, and
--   checks the head, that the run is open and not parked, that its inbox holds exactly the
--   applied inputs, and that a closing run has no open child. (That a new run's start is due
--   was checked as its first event was read, `Store::hinted_start`: a run only becomes more
--   due, and a step that took it meanwhile moved its head.) Every write reads `fence`
--   first, so the statement writes all or nothing.
-- * An input delivered after this statement's snapshot but before its lock wrote a new
--   version of the run's queue row; the queue row is deleted only if it is still the version
--   this snapshot saw (`xmin`), so the run stays queued for that input.
-- * Heap-only update of the run row, as in `write_steps_and_release.sql`.
WITH fence AS MATERIALIZED (
         SELECT r.run_id FROM reprise.runs r
          WHERE r.run_id = $20 AND r.head_seq = $21 AND r.head_hash = $22
            AND r.closed_at IS NULL AND r.parked_reason IS NULL
            AND (SELECT COALESCE(array_agg(i.id ORDER BY i.id)
                                   FILTER (WHERE i.visible_at <= reprise.db_now($1)), '{}')
                          = $19::bigint[]
                        AND count(*) = cardinality($19::bigint[])
                   FROM reprise.inbox i WHERE i.run_id = $20)
            AND ($25::text IS NULL OR NOT EXISTS (
                 SELECT 1 FROM (SELECT status FROM reprise.runs WHERE parent_run_id = $20 OFFSET 0) c
                  WHERE c.status = 'running'))
            FOR NO KEY UPDATE SKIP LOCKED),
     appended AS (
         INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
         SELECT * FROM UNNEST($2::uuid[], $3::bigint[], $4::timestamptz[], $5::text[],
                              $6::bytea[], $7::bytea[])
          WHERE EXISTS (SELECT 1 FROM fence)),
     new_tasks AS (
         SELECT * FROM UNNEST($8::uuid[], $9::bigint[], $10::text[], $11::text[], $12::bytea[],
                              $13::bytea[], $14::bigint[], $15::bigint[], $16::bigint[],
                              $17::text[], $18::text[], $28::smallint[])
             AS t(run_id, seq, queue, kind, input, options, stc, hb, s2c, traceparent,
                  tracestate, priority)
          WHERE EXISTS (SELECT 1 FROM fence)),
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
     applied AS (
         DELETE FROM reprise.inbox WHERE id = ANY($19) AND EXISTS (SELECT 1 FROM fence)),
     released AS (
         UPDATE reprise.runs r
            SET head_seq = $23, head_hash = $24, applied_seq = $23,
                status = COALESCE($25, r.status),
                custom_status = COALESCE($29, r.custom_status),
                custom_status_at = CASE WHEN $29::bytea IS NULL THEN r.custom_status_at
                                        ELSE reprise.db_now($1) END,
                closed_at = CASE WHEN $25::text IS NULL THEN r.closed_at ELSE reprise.db_now($1) END
          WHERE r.run_id = ANY (ARRAY(SELECT run_id FROM fence))),
     dequeued AS (
         DELETE FROM reprise.ready_runs q
          WHERE q.run_id = ANY (ARRAY(SELECT run_id FROM fence))
            AND ($25::text IS NOT NULL
                 OR q.xmin = (SELECT s.xmin FROM reprise.ready_runs s WHERE s.run_id = $20))),
     closed_tasks AS (
         DELETE FROM reprise.activity_tasks t
          WHERE $25::text IS NOT NULL AND t.run_id = ANY (ARRAY(SELECT run_id FROM fence))
            AND num_nulls(t.lease_owner) = 1),
     notified AS (
         SELECT pg_notify(n.channel, n.payload)
           FROM UNNEST($26::text[], $27::text[]) AS n(channel, payload)
          WHERE EXISTS (SELECT 1 FROM fence))
SELECT (SELECT count(*) FROM fence) AS fenced, (SELECT count(*) FROM notified) AS sent
