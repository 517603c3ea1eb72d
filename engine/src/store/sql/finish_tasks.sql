-- Records the outcomes of attempts that the worker $10 ran, each only if the worker still holds
-- its lease (`Store::finish_tasks`, binder `FinishTasks`): a result or final failure goes to
-- its run's inbox and queues the run; a failure the policy retries schedules the next attempt
-- after its backoff (and its schedule-to-start deadline, if it has one), unless the
-- schedule-to-close deadline has passed. Returns the outcomes
-- whose lease held, and whether each is retried.
--   $1 bigint                         clock offset in µs (see `reprise.db_now`)
--   $2..$9 uuid[] bigint[] bigint[] text[] bytea[] text[] bigint[] bytea[]
--                                     outcomes: run, scheduled seq, lease token, input kind,
--                                     input bytes, dedupe key, retry after (µs; NULL: no
--                                     retry), failure
--   $10 text                          the worker
--   $11 text                          the engines' channel
--   $12 text                          the workers' channel
-- Rules it keeps:
-- * Lock order: runs, in id order, then tasks (as steps and terminations take them). The runs
--   are locked by a materialized subquery that the task lock's filter counts, and PostgreSQL
--   evaluates such a constant filter once, before it reads any task.
-- * Fencing: a task is changed only if its lease owner and token are the attempt's, checked
--   on the locked row. Each task is looked up by its key alone, fenced with OFFSET 0: a
--   condition on the lease inside would let the planner read the partial index on leases.
-- * Whether a run still runs comes from its locked row, its newest version.
-- * A lone delivered outcome's notification names its inbox row ("input <run> <inbox id>",
--   never the outcome itself, which every role could read), so that an engine holding the run
--   can read it and step at once (see `RunHint`); anything else is a plain wake-up.
-- * An attempt that ends under a concurrency limit (of its queue or activity type) frees a
--   slot that workers held back by the limit are waiting for: it wakes them on $12.
-- * It commits without waiting for its WAL flush: a lost outcome leaves its attempt leased,
--   to run again; the step that applies it waits for its own flush, which covers this one.
WITH k AS (
         SELECT * FROM UNNEST($2::uuid[], $3::bigint[], $4::bigint[], $5::text[], $6::bytea[],
                              $7::text[], $8::bigint[], $9::bytea[])
             AS k(run_id, seq, token, kind, event, dedupe_key, retry_after, failure)),
     locked AS MATERIALIZED (
         SELECT r.run_id, r.status = 'running' AND r.parked_reason IS NULL AS wakes
           FROM reprise.runs r WHERE r.run_id = ANY (ARRAY(SELECT run_id FROM k))
          ORDER BY r.run_id FOR NO KEY UPDATE),
     held AS MATERIALIZED (
         SELECT t.run_id, t.scheduled_seq, t.task_queue, t.activity_type,
                k.retry_after IS NOT NULL
                AND NOT COALESCE(t.schedule_to_close_deadline <= reprise.db_now($1), false) AS retry
           FROM k CROSS JOIN LATERAL (
                SELECT t.run_id, t.scheduled_seq, t.lease_owner, t.lease_token,
                       t.schedule_to_close_deadline, t.task_queue, t.activity_type
                  FROM reprise.activity_tasks t
                 WHERE t.run_id = k.run_id AND t.scheduled_seq = k.seq
                   AND (SELECT count(*) FROM locked) > 0
                OFFSET 0 FOR UPDATE) t
          WHERE t.lease_owner = $10 AND t.lease_token = k.token),
     retried AS (
         UPDATE reprise.activity_tasks t
            SET lease_owner = NULL, lease_expires_at = NULL, last_failure = k.failure,
                visible_at = reprise.db_now($1) + k.retry_after * interval '1 microsecond',
                start_deadline = reprise.db_now($1)
                    + (k.retry_after + t.schedule_to_start_micros) * interval '1 microsecond'
           FROM k
          WHERE t.run_id = ANY (ARRAY(SELECT DISTINCT run_id FROM held WHERE retry))
            AND (t.run_id, t.scheduled_seq) IN (SELECT run_id, scheduled_seq FROM held WHERE retry)
            AND k.run_id = t.run_id AND k.seq = t.scheduled_seq),
     done AS (
         DELETE FROM reprise.activity_tasks t
          WHERE t.run_id = ANY (ARRAY(SELECT DISTINCT run_id FROM held WHERE NOT retry))
            AND (t.run_id, t.scheduled_seq) IN (SELECT run_id, scheduled_seq FROM held WHERE NOT retry)),
     delivered AS (
         INSERT INTO reprise.inbox (run_id, visible_at, kind, event, dedupe_key)
         SELECT k.run_id, reprise.db_now($1), k.kind, k.event, k.dedupe_key
           FROM k JOIN held h ON h.run_id = k.run_id AND h.scheduled_seq = k.seq
          WHERE NOT h.retry
         ON CONFLICT (run_id, dedupe_key) DO NOTHING RETURNING run_id, id),
     queued AS (
         INSERT INTO reprise.ready_runs (run_id, ready_at)
         SELECT l.run_id, reprise.db_now($1) FROM locked l
          WHERE l.wakes AND l.run_id IN (SELECT run_id FROM delivered)
         ON CONFLICT (run_id) DO UPDATE SET ready_at = LEAST(ready_runs.ready_at, EXCLUDED.ready_at)),
     woken AS (
         SELECT pg_notify($11, CASE
                    WHEN (SELECT count(*) FROM delivered) = 1
                    THEN 'input ' || d.run_id || ' ' || d.id
                    ELSE '' END)
           FROM (SELECT * FROM delivered LIMIT 1) d),
     freed AS (
         SELECT pg_notify($12, '') WHERE EXISTS (
                SELECT 1 FROM reprise.task_limits l JOIN held h
                    ON (l.scope = 'queue' AND l.name = h.task_queue)
                    OR (l.scope = 'activity_type' AND l.name = h.activity_type)
                 WHERE l.max_concurrent IS NOT NULL))
SELECT h.run_id, h.scheduled_seq, h.retry, w.notified, f.freed, a.async FROM held h
 CROSS JOIN (SELECT count(*) AS notified FROM woken) w
 CROSS JOIN (SELECT count(*) AS freed FROM freed) f
 CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true) AS async) a
