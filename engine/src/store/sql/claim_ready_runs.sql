-- Claims up to $4 runs whose work is due, in queue order, each with its visible inputs and, for
-- a new run, its first event (`Store::claim_batch`, binder `ClaimRuns`).
--   $1 bigint   clock offset in µs (see `reprise.db_now`)
--   $2 text[]   the workflow types this process knows
--   $3 text     this process's build
--   $4 bigint   how many runs at most
--   $5 text[]   the workflow task queues this process serves
-- Rules it keeps:
-- * Routing: a run is claimed only by a process that knows its type and serves its task
--   queue; any other run stays queued, visible, for one that does (it is never parked for it).
--   Queued runs nobody here can take are passed over by each claim (one key lookup each).
-- * Lock order: runs first, each locked as the queue reaches it (FOR NO KEY UPDATE SKIP LOCKED
--   in a LATERAL subquery), so no plan can lock more runs than it returns; then the run's inbox
--   rows. NO KEY lets deliveries insert inbox rows meanwhile (their foreign key takes KEY SHARE).
-- * A parked run is claimed only by a process that is not the build that parked it. `closed_at IS NULL` (the same as status = 'running') keeps the lookup on the key.
-- * Inputs are locked as they are read: this snapshot predates the run's lock and may still
--   show inputs that a batch committing in between consumed; the row lock skips those rows.
-- * It returns when each run became ready and when each input became due (for a timer: when
--   it was to fire), for the schedule-to-start and timer-lateness metrics.
-- * Planner fences: the queue scan is fenced with OFFSET 0; both joined subqueries have a
--   LIMIT, so that they are not flattened into joins that scan every first event or inbox row.
SELECT reprise.db_now($1) AS now, q.ready_at, r.*, f.*, i.*
  FROM (SELECT run_id, ready_at FROM reprise.ready_runs
         WHERE ready_at <= reprise.db_now($1)
         ORDER BY ready_at OFFSET 0) q
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
 LIMIT $4
