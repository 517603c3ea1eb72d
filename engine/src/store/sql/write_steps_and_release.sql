-- Writes a batch's steps and releases its runs, all in one statement (`StepBatch::commit`,
-- binder `WriteAndRelease`): events with chain hashes, the tasks of the activities they
-- scheduled, the deletion of the inputs they applied, each run's new head and status, its
-- place in the ready queue, what a closed run leaves behind, and the notifications. Returns
-- the open children of the runs that closed, for their parent-close policies (one row even
-- when there are none, so that the notifications are always sent).
--   $1 bigint                         clock offset in µs (see `reprise.db_now`)
--   $2..$7 uuid[] bigint[] timestamptz[] text[] bytea[] bytea[]
--                                     events: run, seq, recorded at, kind, bytes, chain hash
--   $8..$16 uuid[] bigint[] text[] text[] bytea[] bytea[] bigint[] bigint[] bigint[]
--                                     tasks: run, scheduled seq, queue, activity type, input,
--                                     options, start-to-close, heartbeat, schedule-to-close (µs)
--   $17 text[], $18 text[]            tasks: the trace context of the step that scheduled each
--                                     (traceparent, tracestate; NULL: not traced)
--   $19 bigint[]                      the inbox rows applied
--   $20..$24 uuid[] bigint[] bigint[] bytea[] text[]
--                                     heads: run, head when claimed, new head seq, new head
--                                     hash, status it closes with (NULL: stays open)
--   $25 text[], $26 text[]            notifications: channels, payloads
--   $27 text                          the engines' channel
--   $28 smallint[]                    tasks: the priority given at the call (NULL: the run's)
--   $29 bytea[]                       heads: the custom status the step set (NULL: unchanged)
-- Rules it keeps:
-- * The caller holds every run's row lock (runs before tasks and inbox rows). A run whose
--   head moved since the claim (terminated meanwhile by its parent's close in this batch) is
--   not released again.
-- * Heap-only updates: a run that stays open gets new values only in columns no index covers
--   (head_seq, head_hash, applied_seq, the custom status), so PostgreSQL keeps the update HOT. The parked
--   columns are indexed (`runs_parked`) but keep their values (NULL) unless the run was
--   parked: only releasing a parked run is not heap-only.
-- * A run stays queued only while its inbox holds something other than what its step applied
--   (a timer not yet due, or inputs past the 1,000 a step takes); one that still has an input
--   due wakes an engine ($27): engines sleep until the next due time, not on work due already.
--   The upsert and the delete of queue rows take disjoint runs (a statement may touch a row
--   once).
-- * Rows are named by key (`key = ANY (ARRAY(...))`), and `num_nulls(lease_owner) = 1` is
--   `lease_owner IS NULL` in a form that does not lead the planner to the index of every
--   claimable task (see `store/connection.rs`).
WITH appended AS (
         INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
         SELECT * FROM UNNEST($2::uuid[], $3::bigint[], $4::timestamptz[], $5::text[],
                              $6::bytea[], $7::bytea[])),
     new_tasks AS (
         SELECT * FROM UNNEST($8::uuid[], $9::bigint[], $10::text[], $11::text[], $12::bytea[],
                              $13::bytea[], $14::bigint[], $15::bigint[], $16::bigint[],
                              $17::text[], $18::text[], $28::smallint[])
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
     applied AS (DELETE FROM reprise.inbox WHERE id = ANY($19)),
     h AS (SELECT * FROM UNNEST($20::uuid[], $21::bigint[], $22::bigint[], $23::bytea[], $24::text[],
                                $29::bytea[])
             AS h(run_id, claimed_head, head_seq, head_hash, closing, custom_status)),
     released AS (
         UPDATE reprise.runs r
            SET (head_seq, head_hash, applied_seq, status, closed_at, custom_status,
                 custom_status_at) = (
                    SELECT h.head_seq, h.head_hash, h.head_seq,
                           CASE WHEN h.closing IS NOT NULL AND r.status = 'running'
                                THEN h.closing ELSE r.status END,
                           CASE WHEN h.closing IS NOT NULL AND r.status = 'running'
                                THEN reprise.db_now($1) ELSE r.closed_at END,
                           COALESCE(h.custom_status, r.custom_status),
                           CASE WHEN h.custom_status IS NULL THEN r.custom_status_at
                                ELSE reprise.db_now($1) END
                      FROM h WHERE h.run_id = r.run_id),
                parked_reason = NULL, parked_at = NULL, parked_build = NULL
          WHERE r.run_id = ANY (ARRAY(SELECT run_id FROM h))
            AND r.head_seq = (SELECT h.claimed_head FROM h WHERE h.run_id = r.run_id)
         RETURNING r.run_id, r.status),
     next AS (
         SELECT l.run_id, (SELECT min(i.visible_at) FROM reprise.inbox i
                            WHERE i.run_id = l.run_id AND i.id <> ALL($19)) AS at
           FROM released l WHERE l.status = 'running'),
     queued AS (
         INSERT INTO reprise.ready_runs (run_id, ready_at)
         SELECT run_id, at FROM next WHERE at IS NOT NULL
         ON CONFLICT (run_id) DO UPDATE SET ready_at = EXCLUDED.ready_at
          WHERE ready_runs.ready_at IS DISTINCT FROM EXCLUDED.ready_at),
     idle AS (
         DELETE FROM reprise.ready_runs q
          WHERE q.run_id = ANY (ARRAY(
                SELECT l.run_id FROM released l
                 WHERE NOT EXISTS (SELECT 1 FROM next n WHERE n.run_id = l.run_id AND n.at IS NOT NULL)))),
     closed_inbox AS (
         DELETE FROM reprise.inbox i
          WHERE i.run_id = ANY (ARRAY(SELECT run_id FROM h WHERE closing IS NOT NULL))),
     closed_tasks AS (
         DELETE FROM reprise.activity_tasks t
          WHERE t.run_id = ANY (ARRAY(SELECT run_id FROM h WHERE closing IS NOT NULL))
            AND num_nulls(t.lease_owner) = 1),
     notified AS (
         SELECT pg_notify(n.channel, n.payload)
           FROM (SELECT * FROM UNNEST($25::text[], $26::text[])
                 UNION ALL
                 SELECT $27, '' WHERE EXISTS (SELECT 1 FROM next WHERE at <= reprise.db_now($1))
                ) AS n(channel, payload))
SELECT s.sent, c.run_id, c.parent_close_policy
  FROM (SELECT count(*) AS sent FROM notified) s
  LEFT JOIN (
       SELECT c.run_id, c.parent_close_policy FROM h CROSS JOIN LATERAL (
              SELECT run_id, parent_close_policy, status FROM reprise.runs
               WHERE parent_run_id = h.run_id OFFSET 0) c
        WHERE h.closing IS NOT NULL AND c.status = 'running') c ON true
 ORDER BY c.run_id
