-- Flow control (see docs/ARCHITECTURE.md, "Flow control"): priorities and fairness keys on
-- runs and their activity tasks, fleet-wide limits enforced at claim time, and the workers
-- that announced which queues and activity types they serve.
--
-- The new columns are NOT NULL with a constant default or nullable without one, and their
-- checks are NOT VALID (held for every row written from now on; the rows already there hold
-- the default): adding them neither rewrites nor scans a table, so the migration holds its
-- locks for moments whatever the number of runs.

-- A run's priority (1 lowest .. 9 highest, 5 by default) and fairness key (a tenant, a
-- customer; NULL: none), given at its start and inherited by its activity tasks.
ALTER TABLE reprise.runs
    ADD COLUMN priority smallint NOT NULL DEFAULT 5,
    ADD COLUMN fairness_key text,
    ADD CONSTRAINT runs_priority_range CHECK (priority BETWEEN 1 AND 9) NOT VALID;

ALTER TABLE reprise.activity_tasks
    ADD COLUMN priority smallint NOT NULL DEFAULT 5,
    ADD COLUMN fairness_key text,
    ADD CONSTRAINT activity_tasks_priority_range CHECK (priority BETWEEN 1 AND 9) NOT VALID;

-- Claims read due tasks in priority order, then oldest first. Tasks without a fairness key
-- (the usual case) and tasks with one are indexed apart, so that neither kind's backlog is
-- scanned to find the other's head.
DROP INDEX reprise.activity_tasks_claimable;
CREATE INDEX activity_tasks_claimable ON reprise.activity_tasks
    (task_queue, priority DESC, visible_at)
    WHERE lease_owner IS NULL AND fairness_key IS NULL;
-- Claims held back by a limit read due tasks per (queue, activity type) instead, so that
-- the backlog of a type at its limit is never scanned to find the work of another.
CREATE INDEX activity_tasks_claimable_by_type ON reprise.activity_tasks
    (task_queue, activity_type, priority DESC, visible_at)
    WHERE lease_owner IS NULL AND fairness_key IS NULL;
CREATE INDEX activity_tasks_claimable_by_key ON reprise.activity_tasks
    (task_queue, fairness_key, priority DESC, visible_at)
    WHERE lease_owner IS NULL AND fairness_key IS NOT NULL;
-- Concurrency limits count the attempts running per queue and per activity type through
-- `activity_tasks_lease_expiry`, whose rows are exactly the running attempts (as many as the
-- workers have slots): indexes of their own would cost every claim two more index entries.

-- Fleet-wide limits on activity attempts: at most `max_concurrent` running at once, and a
-- token bucket of `rate_per_second` refilled up to `burst`. One row per task queue or
-- activity type; claims lock the rows that apply to them, so that two workers never both
-- take the last slot or token.
CREATE TABLE reprise.task_limits (
    scope           text             NOT NULL CHECK (scope IN ('queue', 'activity_type')),
    name            text             NOT NULL CHECK (name <> ''),
    max_concurrent  integer          CHECK (max_concurrent > 0),
    rate_per_second double precision CHECK (rate_per_second > 0
                                            AND rate_per_second < 'infinity'),
    burst           integer          CHECK (burst > 0),
    -- The bucket: tokens held at `refilled_at` (claims refill it from the time passed).
    tokens          double precision NOT NULL DEFAULT 0,
    refilled_at     timestamptz      NOT NULL DEFAULT now(),
    updated_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, name),
    CHECK ((rate_per_second IS NULL) = (burst IS NULL)),
    CHECK (max_concurrent IS NOT NULL OR rate_per_second IS NOT NULL)
);

-- The workers that announced themselves: what they serve, for `limits set` to refuse a name
-- nobody serves and for operators to see who polls what.
CREATE TABLE reprise.workers (
    owner          text        PRIMARY KEY,
    queues         text[]      NOT NULL,
    activity_types text[]      NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now()
);

-- Which fairness key opens the claims' turns (see `reprise.claim_tasks`); a sequence, so that
-- claims never wait for each other on it.
CREATE SEQUENCE reprise.claim_rotation;

-- Leases up to `p_limit` due attempts of the queues `p_queues` and activity types `p_types`
-- for the worker `p_owner` when a limit applies or fairness keys are queued
-- (`Store::claim_tasks`, after `claim_tasks.sql` said so). Each claimed row is a new
-- attempt with a new lease token. A last row with a NULL run carries `retry_in_seconds`: how
-- long until a rate limit that held this claim back holds a claim's worth of tokens again
-- (the worker sleeps that long instead of polling). The rules it keeps:
-- * Order: highest priority first, then the oldest due. With fairness keys present, the
--   queue's keys take turns: each key's first task, then each key's second, and so on (the
--   key that opens a turn moves on by one at each claim: round-robin, even when a claim
--   takes fewer tasks than there are keys), so one key's backlog cannot starve another's;
--   tasks without a key share one turn as if they had one key.
-- * Limits: the limit rows that apply are locked (in key order, so that claims never
--   deadlock) for the claim's transaction; running attempts are counted from the leases,
--   so a limit holds across every worker and survives crashes (an attempt whose worker died
--   counts until its lease runs out); the bucket is refilled from database time.
-- * The common case (no limit applies, no task has a key) never comes here: it is one
--   statement of its own (engine/src/store/sql/claim_tasks.sql).
-- * SKIP LOCKED: workers never wait for each other's claims of tasks (only for limit rows).
-- * The lease is the attempt's start-to-close timeout (10 minutes when none is set), or its
--   heartbeat timeout if shorter, from database time.
-- * It commits without waiting for its WAL flush: a claim lost in a crash only means that
--   the attempt runs again.
CREATE FUNCTION reprise.claim_tasks(p_offset bigint, p_queues text[], p_limit bigint,
                                    p_owner text, p_types text[])
RETURNS TABLE (run_id uuid, workflow_id text, scheduled_seq bigint, activity_type text,
               input bytea, options bytea, attempt integer, lease_token bigint,
               task_queue text, waited_seconds double precision, traceparent text,
               tracestate text, retry_in_seconds double precision)
LANGUAGE plpgsql AS $claim$
#variable_conflict use_column
DECLARE
    v_now        timestamptz := reprise.db_now(p_offset);
    lim          record;
    cand         record;
    v_room       bigint;
    v_tokens     double precision;
    v_retry      double precision;
    -- Per applying limit: its scope and name, room left in this claim, tokens after refill
    -- (NULL: no rate), and how many this claim took.
    l_scope      text[] := '{}';
    l_name       text[] := '{}';
    l_room       bigint[] := '{}';
    l_tokens     double precision[] := '{}';
    l_taken      bigint[] := '{}';
    v_full_queues text[] := '{}';
    v_full_types  text[] := '{}';
    v_runs       uuid[] := '{}';
    v_seqs       bigint[] := '{}';
    v_taken      bigint := 0;
    -- Which key opens each turn: the next at every claim that has keys to share between.
    v_rotation   bigint;
    qi           integer;
    ti           integer;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);

    -- The limits that apply: how much room each leaves this claim.
    FOR lim IN SELECT l.scope, l.name, l.max_concurrent, l.rate_per_second, l.burst, l.tokens,
                      l.refilled_at
                 FROM reprise.task_limits l
                WHERE (l.scope = 'queue' AND l.name = ANY (p_queues))
                   OR (l.scope = 'activity_type' AND l.name = ANY (p_types))
                ORDER BY l.scope, l.name FOR UPDATE LOOP
        v_room := p_limit;
        v_tokens := NULL;
        IF lim.max_concurrent IS NOT NULL THEN
            IF lim.scope = 'queue' THEN
                v_room := LEAST(v_room, lim.max_concurrent - (
                    SELECT count(*) FROM reprise.activity_tasks t
                     WHERE t.task_queue = lim.name AND t.lease_owner IS NOT NULL));
            ELSE
                v_room := LEAST(v_room, lim.max_concurrent - (
                    SELECT count(*) FROM reprise.activity_tasks t
                     WHERE t.activity_type = lim.name AND t.lease_owner IS NOT NULL));
            END IF;
        END IF;
        IF lim.rate_per_second IS NOT NULL THEN
            v_tokens := LEAST(lim.burst::float8, lim.tokens + lim.rate_per_second
                              * GREATEST(0, EXTRACT(EPOCH FROM v_now - lim.refilled_at)));
            IF floor(v_tokens) < v_room THEN
                v_room := floor(v_tokens)::bigint;
                -- Until the bucket holds a claim's worth again (this claim's slots, at most
                -- the burst), counting from what this claim leaves in it: waking at every
                -- token instead would have every held-back worker claim at every token, for
                -- one of them to get it.
                v_retry := LEAST(v_retry,
                                 (LEAST(lim.burst, p_limit) - (v_tokens - floor(v_tokens)))
                                     / lim.rate_per_second);
            END IF;
        END IF;
        v_room := GREATEST(v_room, 0);
        l_scope := array_append(l_scope, lim.scope);
        l_name := array_append(l_name, lim.name);
        l_room := array_append(l_room, v_room);
        l_tokens := array_append(l_tokens, v_tokens);
        l_taken := array_append(l_taken, 0::bigint);
        IF v_room = 0 AND lim.scope = 'queue' THEN
            v_full_queues := array_append(v_full_queues, lim.name);
        ELSIF v_room = 0 THEN
            v_full_types := array_append(v_full_types, lim.name);
        END IF;
    END LOOP;

    v_rotation := nextval('reprise.claim_rotation');
    -- The candidates, in claim order: each (queue, key)'s first p_limit due tasks, taking
    -- turns; within a turn, keys in name order, rotated by one at each claim. Tasks without a
    -- key are read per (queue, activity type), skipping the scopes at their limit, so that a
    -- limited type's backlog is never scanned (one index probe per pair instead).
    FOR cand IN
        WITH RECURSIVE keys AS (
                (SELECT t.task_queue AS q, t.fairness_key AS k FROM reprise.activity_tasks t
                  WHERE t.task_queue = ANY (p_queues) AND t.lease_owner IS NULL
                    AND t.fairness_key IS NOT NULL
                  ORDER BY t.task_queue, t.fairness_key LIMIT 1)
                UNION ALL
                SELECT n.q, n.k FROM keys CROSS JOIN LATERAL (
                    SELECT t.task_queue AS q, t.fairness_key AS k FROM reprise.activity_tasks t
                     WHERE t.task_queue = ANY (p_queues) AND t.lease_owner IS NULL
                       AND t.fairness_key IS NOT NULL
                       AND (t.task_queue, t.fairness_key) > (keys.q, keys.k)
                     ORDER BY t.task_queue, t.fairness_key LIMIT 1) n),
             due AS (
                SELECT d.* FROM keys CROSS JOIN LATERAL (
                    SELECT t.run_id, t.scheduled_seq, t.task_queue, t.activity_type,
                           t.fairness_key, t.priority, t.visible_at
                      FROM reprise.activity_tasks t
                     WHERE t.task_queue = keys.q AND t.fairness_key = keys.k
                       AND t.lease_owner IS NULL AND t.visible_at <= v_now
                       AND t.activity_type = ANY (p_types)
                       AND NOT t.activity_type = ANY (v_full_types)
                     ORDER BY t.priority DESC, t.visible_at LIMIT p_limit) d
                 WHERE NOT d.task_queue = ANY (v_full_queues)
                UNION ALL
                SELECT d.* FROM UNNEST(p_queues) AS q(name) CROSS JOIN UNNEST(p_types) AS ty(name)
                 CROSS JOIN LATERAL (
                    SELECT t.run_id, t.scheduled_seq, t.task_queue, t.activity_type,
                           t.fairness_key, t.priority, t.visible_at
                      FROM reprise.activity_tasks t
                     WHERE t.task_queue = q.name AND t.activity_type = ty.name
                       AND t.lease_owner IS NULL AND t.fairness_key IS NULL
                       AND t.visible_at <= v_now
                     ORDER BY t.priority DESC, t.visible_at LIMIT p_limit) d
                 WHERE NOT q.name = ANY (v_full_queues) AND NOT ty.name = ANY (v_full_types))
        SELECT x.run_id, x.scheduled_seq, x.task_queue, x.activity_type, x.priority, x.turn,
               (x.key_rank + v_rotation) % max(x.key_rank) OVER () AS place, x.visible_at
          FROM (SELECT d.*,
                       row_number() OVER (PARTITION BY d.task_queue, d.fairness_key
                                          ORDER BY d.priority DESC, d.visible_at) AS turn,
                       dense_rank() OVER (ORDER BY d.task_queue, d.fairness_key NULLS FIRST)
                           AS key_rank
                  FROM due d) x
         ORDER BY priority DESC, turn, place, visible_at
    LOOP
        EXIT WHEN v_taken >= p_limit;
        qi := NULL;
        ti := NULL;
        FOR i IN 1 .. coalesce(array_length(l_scope, 1), 0) LOOP
            IF l_scope[i] = 'queue' AND l_name[i] = cand.task_queue THEN
                qi := i;
            ELSIF l_scope[i] = 'activity_type' AND l_name[i] = cand.activity_type THEN
                ti := i;
            END IF;
        END LOOP;
        CONTINUE WHEN (qi IS NOT NULL AND l_room[qi] <= 0) OR (ti IS NOT NULL AND l_room[ti] <= 0);
        PERFORM 1 FROM reprise.activity_tasks t
          WHERE t.run_id = cand.run_id AND t.scheduled_seq = cand.scheduled_seq
            AND t.lease_owner IS NULL
          FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        IF qi IS NOT NULL THEN
            l_room[qi] := l_room[qi] - 1;
            l_taken[qi] := l_taken[qi] + 1;
        END IF;
        IF ti IS NOT NULL THEN
            l_room[ti] := l_room[ti] - 1;
            l_taken[ti] := l_taken[ti] + 1;
        END IF;
        v_runs := array_append(v_runs, cand.run_id);
        v_seqs := array_append(v_seqs, cand.scheduled_seq);
        v_taken := v_taken + 1;
    END LOOP;

    -- Spend the tokens taken. A bucket nothing was taken from keeps its row as it was: the
    -- refill is computed from `refilled_at` either way, and a claim that took nothing then
    -- writes nothing.
    UPDATE reprise.task_limits l
       SET tokens = x.tokens - x.taken, refilled_at = v_now
      FROM UNNEST(l_scope, l_name, l_tokens, l_taken) AS x(scope, name, tokens, taken)
     WHERE l.scope = x.scope AND l.name = x.name AND x.tokens IS NOT NULL AND x.taken > 0;

    RETURN QUERY
    UPDATE reprise.activity_tasks t
       SET lease_owner = p_owner, lease_token = t.lease_token + 1, attempt = t.attempt + 1,
           heartbeat_at = NULL,
           lease_expires_at = v_now
               + LEAST(COALESCE(t.start_to_close_micros, 600000000),
                       COALESCE(t.heartbeat_timeout_micros, 9223372036854775807))
                 * interval '1 microsecond'
      FROM UNNEST(v_runs, v_seqs) AS k(run_id, scheduled_seq)
     WHERE t.run_id = k.run_id AND t.scheduled_seq = k.scheduled_seq
    RETURNING t.run_id, (SELECT r.workflow_id FROM reprise.runs r WHERE r.run_id = t.run_id),
              t.scheduled_seq, t.activity_type, t.input, t.options, t.attempt, t.lease_token,
              t.task_queue, EXTRACT(EPOCH FROM v_now - t.visible_at)::float8, t.traceparent,
              t.tracestate, NULL::float8;
    IF v_retry IS NOT NULL AND v_taken < p_limit THEN
        RETURN QUERY SELECT NULL::uuid, NULL::text, NULL::bigint, NULL::text, NULL::bytea,
                            NULL::bytea, NULL::integer, NULL::bigint, NULL::text, NULL::float8,
                            NULL::text, NULL::text, v_retry;
    END IF;
END
$claim$;
