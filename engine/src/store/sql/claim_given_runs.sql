-- Claims the runs $4 if their work is due, each with its visible inputs and, for a new run, its
-- first event (`Store::claim_batch`, binder `ClaimRuns`): the runs a failed batch steps again
-- one at a time. The same statement as `claim_ready_runs.sql` but for the queue it reads.
--   $1 bigint   clock offset in µs (see `reprise.db_now`)
--   $2 text[]   the workflow types this process knows
--   $3 text     this process's build
--   $4 uuid[]   the runs
--   $5 text[]   the workflow task queues this process serves
-- Rules it keeps: those of `claim_ready_runs.sql` (routing, lock order, parked runs, locked inputs,
-- planner fences).
SELECT reprise.db_now($1) AS now, q.ready_at, r.*, f.*, i.*
  FROM (SELECT run_id, ready_at FROM reprise.ready_runs
         WHERE run_id = ANY($4) AND ready_at <= reprise.db_now($1)
        OFFSET 0) q
 CROSS JOIN LATERAL (
       SELECT r.run_id, r.workflow_id, r.workflow_type, r.head_seq, r.head_hash, r.applied_seq,
              r.parent_close_policy
         FROM reprise.runs r
        WHERE r.run_id = q.run_id AND r.closed_at IS NULL
          AND r.workflow_type = ANY($2) AND r.task_queue = ANY($5)
          AND (r.parked_reason IS NULL OR r.parked_build IS DISTINCT FROM $3)
          FOR NO KEY UPDATE SKIP LOCKED) r
  LEFT JOIN LATERAL (
       SELECT h.seq, h.event, h.hash FROM reprise.history h
        WHERE h.run_id = r.run_id AND h.seq = 1 AND r.head_seq = 1 LIMIT 1) f ON true
 CROSS JOIN LATERAL (
       SELECT COALESCE(array_agg(x.id ORDER BY x.visible_at, x.id), '{}') AS inbox_ids,
              COALESCE(array_agg(x.event ORDER BY x.visible_at, x.id), '{}') AS inbox_events,
              COALESCE(array_agg(x.visible_at ORDER BY x.visible_at, x.id), '{}') AS inbox_due
         FROM (SELECT id, visible_at, event FROM reprise.inbox
                WHERE run_id = r.run_id AND visible_at <= reprise.db_now($1)
                ORDER BY visible_at, id LIMIT 1000 FOR UPDATE) x) i
