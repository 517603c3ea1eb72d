-- Least-privilege roles (issue 19): one role per kind of process, each holding the privileges
-- its statements use and nothing more, and retention as a function instead of a setting that
-- any session could turn on (see docs/operations.md, "Database roles", and docs/ARCHITECTURE.md,
-- "Storage").
--
-- - reprise_engine: steps runs (batches, direct steps), timers, deadlines, schedules, queries,
--   updates, parked runs, the gauges. Never deletes a run or a history row.
-- - reprise_worker: claims activity attempts, heartbeats, records outcomes, times attempts out,
--   announces itself. Never reads or writes history.
-- - reprise_operator: what `Client` and the CLI do: start, signal, cancel, terminate, reset,
--   retry parked runs, queries, updates, schedules, limits, and retention through
--   `reprise.prune_closed_runs`. It appends events (a start's first event, a termination, a
--   reset's history) but never deletes one.
-- - reprise_observer: reads (describe, list, results, export, patch usage, schedules, limits,
--   the gauges' queries, the schema version). It can change nothing.
--
-- The roles are NOLOGIN: a process logs in as a role of its own that is a member of the ones
-- it needs (`CREATE ROLE engine_1 LOGIN ... IN ROLE reprise_engine`); a process that runs an
-- engine and a worker, or starts workflows beside its engine, is a member of each. Roles are
-- global to the cluster: a second Reprise database in the same cluster finds them and only
-- grants on its own tables. The owner of the schema (the role that runs migrations) keeps
-- every privilege; nothing here is granted WITH GRANT OPTION.
--
-- Every grant below is the union of what each role's statements need, table by table
-- (docs/operations.md lists each statement with its file and line). PostgreSQL also
-- asks for privileges a statement does not obviously use, which shape some grants:
-- - SELECT ... FOR UPDATE / FOR NO KEY UPDATE needs UPDATE on some column of the table;
-- - INSERT ... ON CONFLICT (cols) needs SELECT on the conflict columns, and DO UPDATE needs
--   UPDATE on what it sets and SELECT on what it reads (`ready_runs.ready_at` in LEAST(...));
-- - RETURNING and WHERE need SELECT on the columns they read;
-- - a foreign key's checks and ON DELETE CASCADE run as the table's owner, and an identity
--   column (`inbox.id`) takes its value without any privilege on its sequence: neither needs
--   a grant.
-- A new table, sequence or function in a later migration has no grant until that migration
-- gives it one, and a new function is executable by PUBLIC until it revokes that: each
-- migration that adds one says who uses it, here.

-- The roles, created only when missing. Creating them takes CREATEROLE (or a superuser); an
-- owner without it needs an administrator to create them first, once per cluster.
DO $roles$
DECLARE
    r text;
    missing text[] := '{}';
BEGIN
    FOREACH r IN ARRAY ARRAY['reprise_engine', 'reprise_worker', 'reprise_operator',
                             'reprise_observer'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            missing := missing || r;
        END IF;
    END LOOP;
    IF cardinality(missing) = 0 THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                    WHERE rolname = current_user AND (rolcreaterole OR rolsuper)) THEN
        RAISE EXCEPTION 'roles % do not exist and % may not create them',
                        array_to_string(missing, ', '), current_user
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'an administrator runs, once per cluster: '
                      || (SELECT string_agg(format('CREATE ROLE %I NOLOGIN;', m), ' ')
                            FROM unnest(missing) AS m);
    END IF;
    FOREACH r IN ARRAY missing LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION
            -- Another database of the cluster, migrating at the same moment, made it first.
            WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END LOOP;
END
$roles$;

-- Nothing in the schema for anyone by default: the schema and its tables were never granted
-- to PUBLIC, but functions are executable by PUBLIC from their creation, and the schema's
-- USAGE granted below would make that reachable. Grants the four roles held before (given by
-- hand) are dropped too, so that they hold exactly what follows.
REVOKE ALL ON SCHEMA reprise FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA reprise FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA reprise FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA reprise FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA reprise
    FROM reprise_engine, reprise_worker, reprise_operator, reprise_observer;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA reprise
    FROM reprise_engine, reprise_worker, reprise_operator, reprise_observer;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA reprise
    FROM reprise_engine, reprise_worker, reprise_operator, reprise_observer;

-- USAGE only: no role but the owner creates anything in the schema.
GRANT USAGE ON SCHEMA reprise
    TO reprise_engine, reprise_worker, reprise_operator, reprise_observer;

-- Database time, read by nearly every statement (migration 0004).
GRANT EXECUTE ON FUNCTION reprise.db_now(bigint)
    TO reprise_engine, reprise_worker, reprise_operator, reprise_observer;

-- The migrations' bookkeeping: read by every process's readiness check (`/ready` compares the
-- schema version with its build's) and by `reprise schema-version`; written by the owner
-- alone. Created by sqlx before the first migration (`schema.rs`); a database migrated by
-- hand may not have it.
DO $migrations$
BEGIN
    IF pg_catalog.to_regclass('reprise._migrations') IS NOT NULL THEN
        GRANT SELECT ON reprise._migrations
            TO reprise_engine, reprise_worker, reprise_operator, reprise_observer;
    END IF;
END
$migrations$;

-- The engine: claims and steps runs, in batches (store/step/, sql/claim_*.sql,
-- sql/write_steps*.sql) and directly (sql/step_directly.sql); starts children and next runs
-- (sql/insert_run.sql), terminates and cancels children (store/lifecycle.rs), parks and adopts
-- runs, times out deadlines (store/deadlines.rs), fires schedules (store/schedules.rs),
-- answers queries (store/queries.rs), records updates' outcomes (store/updates.rs) and
-- samples the gauges (telemetry/gauges.rs). It moves a continued run's signals to the next
-- run (UPDATE inbox) and deletes applied inputs, closed runs' pending work and cancelled
-- tasks; it deletes no run and no history.
GRANT SELECT, INSERT, UPDATE ON reprise.runs TO reprise_engine;
GRANT SELECT, INSERT ON reprise.history TO reprise_engine;
GRANT SELECT, INSERT, UPDATE, DELETE ON reprise.inbox TO reprise_engine;
GRANT SELECT, INSERT, UPDATE, DELETE ON reprise.ready_runs TO reprise_engine;
GRANT SELECT, INSERT, UPDATE, DELETE ON reprise.activity_tasks TO reprise_engine;
-- SELECT for the conflict columns of the insert that records a patch marker.
GRANT SELECT, INSERT ON reprise.run_patches TO reprise_engine;
GRANT SELECT, UPDATE ON reprise.updates TO reprise_engine;
GRANT SELECT, UPDATE, DELETE ON reprise.queries TO reprise_engine;
GRANT SELECT, UPDATE ON reprise.schedules TO reprise_engine;
-- The gauges read the limits and their use (`Store::task_limits`).
GRANT SELECT ON reprise.task_limits TO reprise_engine;

-- The worker: claims attempts (sql/claim_tasks.sql, and `reprise.claim_tasks` when limits or
-- fairness keys apply), heartbeats, records outcomes (sql/finish_tasks.sql: the run's inbox
-- and queue row), times attempts out (`Store::reap_tasks`) and hands attempts back. A worker
-- runs activity code, with whatever that code depends on, so it gets the columns its
-- statements name where a table-wide grant would give it more:
-- - `runs`: it reads a run's workflow id and whether it still runs, and locks runs before
--   their tasks (the lock order every writer keeps). PostgreSQL asks UPDATE on some column
--   for that lock: `run_id`, a column whose every change the foreign key of the run's history
--   refuses (a run is committed with its first event, and pruned with its history).
-- - `activity_tasks`: it writes the lease, attempt, heartbeat, backoff and last failure,
--   never what the task runs (type, queue, input, options, priority, cancel request).
-- - `task_limits`: claims lock the limits that apply and spend their tokens; only operators
--   set limits.
-- It reads the inbox only for the conflict columns and to return the row it delivered (its
-- id, which the notification names), never another input. No history, updates, queries,
-- schedules or patch markers.
GRANT SELECT (run_id, workflow_id, status, parked_reason), UPDATE (run_id)
    ON reprise.runs TO reprise_worker;
GRANT SELECT (id, run_id, dedupe_key), INSERT ON reprise.inbox TO reprise_worker;
GRANT SELECT, INSERT, UPDATE ON reprise.ready_runs TO reprise_worker;
GRANT SELECT, DELETE,
      UPDATE (lease_owner, lease_token, lease_expires_at, attempt, heartbeat_at,
              heartbeat_details, last_failure, visible_at, start_deadline)
    ON reprise.activity_tasks TO reprise_worker;
GRANT SELECT, UPDATE (tokens, refilled_at) ON reprise.task_limits TO reprise_worker;
GRANT SELECT, INSERT, UPDATE, DELETE ON reprise.workers TO reprise_worker;
GRANT USAGE ON SEQUENCE reprise.claim_rotation TO reprise_worker;
GRANT EXECUTE ON FUNCTION reprise.claim_tasks(bigint, text[], bigint, text, text[])
    TO reprise_worker;

-- The operator: `Client` and the CLI. Starting a run writes its row, first event and queue
-- row (sql/start_runs.sql, sql/insert_run.sql) and its deadlines (`set_policy`); a signal, a
-- cancel request or an update goes to the inbox and queues the run; terminating appends
-- `WorkflowTerminated`, closes the run and deletes its queue row, inbox and tasks, and applies
-- its children's policies (store/lifecycle.rs); a reset writes a new run with its history and
-- tasks (store/reset.rs); triggering a schedule does what the engine's tick does. Retention
-- goes through `reprise.prune_closed_runs` below: no DELETE on runs, history or run_patches.
GRANT SELECT, INSERT, UPDATE ON reprise.runs TO reprise_operator;
GRANT SELECT, INSERT ON reprise.history TO reprise_operator;
GRANT SELECT, INSERT, DELETE ON reprise.inbox TO reprise_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON reprise.ready_runs TO reprise_operator;
GRANT SELECT, INSERT, DELETE ON reprise.activity_tasks TO reprise_operator;
GRANT SELECT ON reprise.run_patches TO reprise_operator;
GRANT SELECT, INSERT ON reprise.updates TO reprise_operator;
GRANT SELECT, INSERT, DELETE ON reprise.queries TO reprise_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON reprise.schedules TO reprise_operator;
GRANT SELECT, INSERT, UPDATE, DELETE ON reprise.task_limits TO reprise_operator;
-- `limits set` refuses a queue or type no worker announced.
GRANT SELECT ON reprise.workers TO reprise_operator;

-- The observer: describe, list, result, export, patch usage, an update's outcome, schedules,
-- limits and who serves what, the deploy check's sample, and the gauges' queries. Not the
-- inbox (no read path uses it) nor queries (asking one writes a row).
GRANT SELECT ON reprise.runs, reprise.history, reprise.ready_runs, reprise.activity_tasks,
                reprise.run_patches, reprise.updates, reprise.schedules, reprise.task_limits,
                reprise.workers
    TO reprise_observer;

-- Retention, as a function. Until now any session could set `reprise.retention` and let the
-- history guard (migration 0001) pass its deletes; with roles, DELETE on history belongs to
-- the owner alone, so retention runs as the owner: this function, SECURITY DEFINER, deletes
-- exactly what `Store::prune_closed` deleted (up to `p_batch` runs closed before
-- `db_now(p_offset) - p_older_than_micros`, none a parent of an open child, with their
-- history, inbox, tasks, patch markers, queue row and updates) and returns how many runs.
-- Its search_path holds only pg_catalog and every name in it is qualified, so that no object
-- a caller creates can stand in for one it uses. It turns `reprise.retention` on for its own
-- statements and back to what it was (a function's SET clause would do it, but PostgreSQL 15
-- refuses one naming a custom setting to a non-superuser owner); on an error the transaction
-- or savepoint that rolls back restores it. EXECUTE: the operator alone (the CLI's `prune`,
-- `Client::prune`): no engine or worker path deletes runs, and the observer changes nothing.
CREATE FUNCTION reprise.prune_closed_runs(p_offset bigint, p_older_than_micros bigint,
                                          p_batch bigint)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $prune$
DECLARE
    v_ids       uuid[];
    v_retention text := current_setting('reprise.retention', true);
BEGIN
    IF p_offset IS NULL OR p_older_than_micros IS NULL OR p_older_than_micros < 0
       OR p_batch IS NULL OR p_batch < 0 THEN
        RAISE EXCEPTION 'prune_closed_runs(%, %, %): the offset, a non-negative age and a non-negative batch are required',
                        p_offset, p_older_than_micros, p_batch
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT COALESCE(array_agg(x.run_id), '{}') INTO v_ids
      FROM (SELECT r.run_id FROM reprise.runs r
             WHERE r.closed_at < reprise.db_now(p_offset)
                                 - p_older_than_micros * interval '1 microsecond'
               AND NOT EXISTS (SELECT 1 FROM reprise.runs c
                                WHERE c.parent_run_id = r.run_id AND c.status = 'running')
             ORDER BY r.closed_at LIMIT p_batch FOR UPDATE OF r SKIP LOCKED) x;
    IF cardinality(v_ids) = 0 THEN
        RETURN 0;
    END IF;
    PERFORM pg_catalog.set_config('reprise.retention', 'on', true);
    DELETE FROM reprise.history WHERE run_id = ANY (v_ids);
    PERFORM pg_catalog.set_config('reprise.retention', COALESCE(v_retention, ''), true);
    DELETE FROM reprise.inbox WHERE run_id = ANY (v_ids);
    DELETE FROM reprise.activity_tasks WHERE run_id = ANY (v_ids);
    DELETE FROM reprise.run_patches WHERE run_id = ANY (v_ids);
    UPDATE reprise.runs SET parent_run_id = NULL WHERE parent_run_id = ANY (v_ids);
    -- Their queue rows and updates go with them (ON DELETE CASCADE).
    DELETE FROM reprise.runs WHERE run_id = ANY (v_ids);
    RETURN cardinality(v_ids);
END
$prune$;

REVOKE ALL ON FUNCTION reprise.prune_closed_runs(bigint, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION reprise.prune_closed_runs(bigint, bigint, bigint) TO reprise_operator;

-- The history guard keeps its rule (append-only; DELETE only of closed runs' rows, with
-- `reprise.retention` on) and adds one: the deleting role must hold the privileges of the
-- table's owner, as the function above does. A session of the owner that sets the setting
-- deletes as before; no other role is granted DELETE on history, and one granted it by
-- mistake (`GRANT ALL ON ALL TABLES ...`) is still refused here, setting or not.
CREATE OR REPLACE FUNCTION reprise.guard_history() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('reprise.retention', true) = 'on'
       AND pg_catalog.pg_has_role(current_user,
                                  (SELECT c.relowner FROM pg_catalog.pg_class c
                                    WHERE c.oid = TG_RELID),
                                  'USAGE') THEN
        IF EXISTS (SELECT 1 FROM reprise.runs WHERE run_id = OLD.run_id AND status = 'running') THEN
            RAISE EXCEPTION 'retention may not delete the history of open run %', OLD.run_id
                USING ERRCODE = 'RH001';
        END IF;
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'reprise.history is append-only: % refused', TG_OP
        USING ERRCODE = 'RH001',
              HINT = 'history rows are deleted only by retention (reprise.prune_closed_runs), for closed runs';
END
$$;
-- A trigger function runs for whoever fires the trigger, without an EXECUTE check; nobody
-- calls it directly. (CREATE OR REPLACE keeps the privileges revoked above.)
REVOKE ALL ON FUNCTION reprise.guard_history() FROM PUBLIC;
