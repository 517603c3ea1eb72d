-- Appends history rows, each with its chain hash (bound by `HistoryRows::bind_to`): a termination's
-- closing event, a reset run's history. Steps append theirs inside `write_steps*.sql` and
-- `step_directly.sql`. The caller holds the runs' row locks (the single writer of a history).
--   $1..$6 uuid[] bigint[] timestamptz[] text[] bytea[] bytea[]
--                                     events: run, seq, recorded at, kind, bytes, chain hash
INSERT INTO reprise.history (run_id, seq, recorded_at, kind, event, hash)
SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::timestamptz[], $4::text[], $5::bytea[],
                     $6::bytea[])
