-- Inserts a run, its `WorkflowStarted` event and its queue row, and wakes engines, unless a run
-- of its workflow id is open: then nothing is written and no row comes back (binder
-- `InsertRun`: a child, a continue-as-new, a lone plain start, a start with a reuse policy or
-- a signal).
--   $1 uuid, $2 text, $3 text, $4 text  run, workflow id, workflow type, task queue
--   $5 bytea                            the first event's chain hash
--   $6 timestamptz                      the first event's recorded time (database time)
--   $7 uuid, $8 bigint                  parent run and its `ChildWorkflowStarted` seq (or NULL)
--   $9 uuid                             the run it continues (or NULL)
--   $10 text                            a child's parent-close policy (or NULL)
--   $11 bytea                           the first event, encoded
--   $12 text                            the engines' channel
--   $13 smallint, $14 text              its priority and fairness key; a NULL priority: a
--                                       child's or a continued run's, both inherited from
--                                       the parent or the run before
--   $15 timestamptz                     a delayed start's first step (or NULL: at once): the
--                                       queue row is due then
-- Rules it keeps: one open run per workflow id (the partial unique index `runs_one_open_run_per_workflow_id`);
-- run, first event and queue row in one statement.
WITH run AS (
         INSERT INTO reprise.runs (run_id, workflow_id, workflow_type, task_queue, head_seq,
                                   head_hash, created_at, parent_run_id, parent_started_seq,
                                   previous_run_id, parent_close_policy, priority,
                                   fairness_key, start_at)
         SELECT $1::uuid, $2::text, $3::text, $4::text, 1, $5::bytea, $6::timestamptz,
                $7::uuid, $8::bigint, $9::uuid, $10::text, COALESCE($13::smallint, b.priority, 5),
                CASE WHEN $13 IS NULL THEN b.fairness_key ELSE $14::text END,
                $15::timestamptz
           FROM (SELECT NULL) one
           LEFT JOIN reprise.runs b ON $13::smallint IS NULL AND b.run_id = COALESCE($7::uuid, $9::uuid)
         ON CONFLICT (workflow_id) WHERE status = 'running' DO NOTHING
         RETURNING run_id),
     first_event AS (
         INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
         SELECT run_id, 1, $6, 'WorkflowStarted', $11, $5 FROM run),
     ready AS (INSERT INTO reprise.ready_runs (run_id, ready_at)
               SELECT run_id, GREATEST($6::timestamptz, $15::timestamptz) FROM run)
SELECT run_id FROM run, pg_notify($12, '')
