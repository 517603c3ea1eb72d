-- When a run next has work moves out of `runs` into a queue of its own (see docs/ARCHITECTURE.md,
-- "Readiness"). `runs.ready_at` was indexed, so every step's release and every activity outcome
-- rewrote the run's row with new entries in all five of its indexes; now those updates touch
-- no indexed column and PostgreSQL makes them heap-only (HOT). The lease columns went unused
-- when row locks became the runs' leases (migration 0002), and go too.

-- One row per run that has work, due at `ready_at` (an input arrived, or a timer is due).
-- Every writer holds the run's row lock, so a release cannot race an arriving input. Parked
-- runs have no row: a process that may take one back queues it again (`adopt_parked`).
CREATE TABLE reprise.ready_runs (
    run_id   uuid        PRIMARY KEY REFERENCES reprise.runs (run_id) ON DELETE CASCADE,
    ready_at timestamptz NOT NULL
);
-- Claim: the runs whose work is due, oldest first.
CREATE INDEX ready_runs_by_time ON reprise.ready_runs (ready_at);

INSERT INTO reprise.ready_runs (run_id, ready_at)
SELECT run_id, ready_at FROM reprise.runs
 WHERE ready_at IS NOT NULL AND status = 'running' AND parked_reason IS NULL;

-- Dropping the columns drops the indexes and checks that use them (runs_ready,
-- runs_lease_expiry).
ALTER TABLE reprise.runs
    DROP COLUMN ready_at,
    DROP COLUMN lease_owner,
    DROP COLUMN lease_token,
    DROP COLUMN lease_expires_at;

-- Room on each page for the new versions of the rows a step rewrites, so that they stay HOT.
ALTER TABLE reprise.runs SET (fillfactor = 80);
