-- Database time as every statement reads it: the transaction's `now()` plus an offset in
-- microseconds that tests bind to move time (`DbClock`; 0 in production). One function, so
-- that each statement can be written whole in one place instead of pasting the expression
-- in from a Rust macro. It is a single-expression SQL function marked STABLE, so PostgreSQL
-- inlines it where it is called: plans and index conditions are those of the expression.
CREATE FUNCTION reprise.db_now(offset_micros bigint) RETURNS timestamptz
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT now() + offset_micros * interval '1 microsecond' $$;
