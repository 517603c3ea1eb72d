-- The histories of the runs $1 (uuid[]), in order: a batch's cache misses, in one statement
-- (`StepBatch::histories`). The caller holds the runs' row locks.
SELECT run_id, seq, event, hash FROM reprise.history WHERE run_id = ANY($1) ORDER BY run_id, seq
