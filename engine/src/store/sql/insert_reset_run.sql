-- Inserts the run a reset starts, its history already written up to `$5` (`Store::reset`,
-- binder `InsertResetRun`), unless a run of its workflow id is open: then nothing is written.
--   $1 uuid, $2 text, $3 text, $4 text  run, workflow id, workflow type, task queue
--   $5 bigint                           its head seq (the last event it keeps, also applied)
--   $6 bytea                            its head's chain hash
--   $7 timestamptz                      its creation time (database time)
--   $8 uuid, $9 bigint                  parent run and its `ChildWorkflowStarted` seq (or NULL)
--   $10 uuid                            the run it resets (whose priority and fairness key
--                                       it keeps)
-- Rules it keeps: one open run per workflow id (`runs_one_open_run_per_workflow_id`).
INSERT INTO reprise.runs (run_id, workflow_id, workflow_type, task_queue, head_seq, head_hash,
                          applied_seq, created_at, parent_run_id, parent_started_seq,
                          previous_run_id, priority, fairness_key)
SELECT $1::uuid, $2::text, $3::text, $4::text, $5::bigint, $6::bytea, $5, $7::timestamptz,
       $8::uuid, $9::bigint, NULL, COALESCE(s.priority, 5), s.fairness_key
  FROM (SELECT NULL) one LEFT JOIN reprise.runs s ON s.run_id = $10::uuid
ON CONFLICT (workflow_id) WHERE status = 'running' DO NOTHING
