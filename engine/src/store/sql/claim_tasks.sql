-- Leases up to $3 due attempts of the queues $2 and activity types $5 for the worker $4
-- (`Store::claim_tasks`, binder `ClaimTasks`): each claim is a new attempt with a new lease
-- token, highest priority first, then the oldest due. This is the common case, one
-- statement: when a fleet-wide limit applies to the worker's queues or types, or a queued
-- task has a fairness key, it claims nothing and returns one row with a NULL run and
-- `held_back` true, and the store claims through `reprise.claim_tasks` instead (migration
-- 0006: limits held, keys taking turns).
--   $1 bigint   clock offset in µs (see `reprise.db_now`)
--   $2 text[]   the task queues
--   $3 bigint   how many attempts at most
--   $4 text     the worker
--   $5 text[]   the activity types the worker registers
-- Rules it keeps:
-- * Routing: a worker claims only activity types it registers, so that during a rolling
--   deploy an old worker never spends the attempts of a type it lacks; such a task stays
--   queued, visible, attempts untouched (each claim passes over those at the head).
-- * The guard is three index probes, evaluated once before the scan (a one-time filter).
-- * SKIP LOCKED: workers never wait for each other's claims.
-- * The lease is the attempt's start-to-close timeout (10 minutes when none is set), or its
--   heartbeat timeout if shorter, from database time.
-- * It commits without waiting for its WAL flush (`synchronous_commit` off for this
--   transaction alone): a claim lost in a crash only means that the attempt runs again.
-- * It returns how long each attempt waited since it was due (schedule-to-start, for metrics)
--   and the trace context of the step that scheduled it (the parent of the attempt's span).
-- * Tasks are named by key (`run_id = ANY (ARRAY(...))`), see `store/connection.rs`.
WITH guard AS MATERIALIZED (
        SELECT EXISTS (SELECT 1 FROM reprise.task_limits l
                        WHERE l.scope = 'queue' AND l.name = ANY ($2))
            OR EXISTS (SELECT 1 FROM reprise.task_limits l
                        WHERE l.scope = 'activity_type' AND l.name = ANY ($5))
            OR EXISTS (SELECT 1 FROM reprise.activity_tasks k
                        WHERE k.task_queue = ANY ($2) AND k.lease_owner IS NULL
                          AND k.fairness_key IS NOT NULL) AS held_back),
     c AS (
        SELECT run_id, scheduled_seq FROM reprise.activity_tasks
         WHERE task_queue = ANY($2) AND lease_owner IS NULL AND fairness_key IS NULL
           AND visible_at <= reprise.db_now($1) AND activity_type = ANY($5)
           AND NOT (SELECT held_back FROM guard)
         ORDER BY priority DESC, visible_at LIMIT $3 FOR UPDATE SKIP LOCKED),
     claimed AS (
        UPDATE reprise.activity_tasks t
           SET lease_owner = $4, lease_token = t.lease_token + 1, attempt = t.attempt + 1,
               heartbeat_at = NULL,
               lease_expires_at = reprise.db_now($1)
                   + LEAST(COALESCE(t.start_to_close_micros, 600000000),
                           COALESCE(t.heartbeat_timeout_micros, 9223372036854775807))
                     * interval '1 microsecond'
         WHERE t.run_id = ANY (ARRAY(SELECT DISTINCT run_id FROM c))
           AND (t.run_id, t.scheduled_seq) IN (SELECT run_id, scheduled_seq FROM c)
           AND set_config('synchronous_commit', 'off', true) IS NOT NULL
        RETURNING t.run_id,
                  (SELECT r.workflow_id FROM reprise.runs r WHERE r.run_id = t.run_id)
                      AS workflow_id,
                  t.scheduled_seq, t.activity_type, t.input, t.options, t.attempt,
                  t.lease_token, t.task_queue,
                  EXTRACT(EPOCH FROM reprise.db_now($1) - t.visible_at)::float8
                      AS waited_seconds,
                  t.traceparent, t.tracestate)
SELECT claimed.*, false AS held_back FROM claimed
UNION ALL
SELECT NULL::uuid, NULL::text, NULL::bigint, NULL::text, NULL::bytea, NULL::bytea,
       NULL::integer, NULL::bigint, NULL::text, NULL::float8, NULL::text, NULL::text, true
  FROM guard WHERE held_back
