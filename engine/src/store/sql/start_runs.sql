-- Starts runs of new workflows, at most one row per workflow id, in the order given (workflow
-- id order), unless a run of the id is open; returns the runs written (`Store::start_plain_runs`,
-- binder `StartRuns`). A lone run written announces itself by id ("started <run>", see
-- `RunHint`: never its event, which every role could read), so that an engine can read its
-- first event and step it at once; more runs are a plain wake-up.
--   $1..$6 uuid[] text[] text[] text[] bytea[] bytea[]
--                                     runs: run, workflow id, workflow type, task queue, first
--                                     event's chain hash, first event
--   $7 timestamptz                    the first events' recorded time (database time)
--   $8 text                           the engines' channel
--   $9 smallint[], $10 text[]          runs: priority, fairness key
-- Rules it keeps: rows go in in workflow-id order, so two such statements racing on the same
-- ids wait for each other in one order, never in a cycle; one open run per workflow id.
WITH new AS (
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[],
                              $6::bytea[], $9::smallint[], $10::text[])
             WITH ORDINALITY AS n(run_id, workflow_id, workflow_type, task_queue, hash, event,
                                  priority, fairness_key, position)),
     run AS (
         INSERT INTO reprise.runs (run_id, workflow_id, workflow_type, task_queue, head_seq,
                                   head_hash, created_at, priority, fairness_key)
         SELECT run_id, workflow_id, workflow_type, task_queue, 1, hash, $7, priority,
                fairness_key
           FROM new ORDER BY position
         ON CONFLICT (workflow_id) WHERE status = 'running' DO NOTHING
         RETURNING run_id),
     first_event AS (
         INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
         SELECT n.run_id, 1, $7, 'WorkflowStarted', n.event, n.hash
           FROM new n WHERE n.run_id IN (SELECT run_id FROM run)),
     ready AS (INSERT INTO reprise.ready_runs (run_id, ready_at) SELECT run_id, $7 FROM run)
SELECT r.run_id FROM run r
 CROSS JOIN (
       SELECT count(pg_notify($8, CASE
                  WHEN (SELECT count(*) FROM run) = 1 THEN 'started ' || n.run_id
                  ELSE '' END))
         FROM (SELECT * FROM new n WHERE n.run_id IN (SELECT run_id FROM run) LIMIT 1) n) n
