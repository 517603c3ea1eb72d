-- Cached activity results (`RegistryBuilder::cache`): a completed attempt's result kept under
-- its activity type and a key hashed from the cache version and the plain input, reused by
-- attempts of any run until it expires. History records every result as before; this table
-- only saves running the code again, so it may be emptied at any time.
CREATE TABLE reprise.activity_cache (
    activity_type text        NOT NULL,
    -- blake3 of the version and the input's plain bytes (after its codecs are undone), so an
    -- encrypted input with a fresh nonce still finds its result.
    cache_key     bytea       NOT NULL,
    version       text        NOT NULL,
    -- The result's payload as history would hold it: through the codecs, so encrypted here
    -- when history is.
    result        bytea       NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    PRIMARY KEY (activity_type, cache_key)
);

-- The purge after each write finds a type's expired entries by this index, not by a scan of
-- every entry of the type.
CREATE INDEX activity_cache_expiry ON reprise.activity_cache (activity_type, expires_at);

-- Workers read, write and purge it; operators clear it (`reprise clear-cache`), seeing no
-- result.
GRANT SELECT, INSERT, UPDATE, DELETE ON reprise.activity_cache TO reprise_worker;
GRANT SELECT (activity_type), DELETE ON reprise.activity_cache TO reprise_operator;
