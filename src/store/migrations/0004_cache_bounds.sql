-- The cache table is bounded (`[store] cache_max_entries`, `cache_max_bytes`): pruning drops the
-- least recently used rows first and needs each row's size without reading its body.
-- `used_at`: when the row was last stored or read (ms since the epoch); `size`: its body,
-- headers and key in bytes, as the memory cache weighs it.
ALTER TABLE cached_responses ADD COLUMN used_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cached_responses ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
UPDATE cached_responses SET used_at = stored_at,
    size = length(body) + length(headers) + length(upstream) + length(path_and_query);
CREATE INDEX IF NOT EXISTS cached_responses_used ON cached_responses (used_at);
-- Expiry by age per upstream.
CREATE INDEX IF NOT EXISTS cached_responses_stored ON cached_responses (upstream, stored_at);
