-- Portable SQL: runs unchanged on SQLite and PostgreSQL. Ids are TEXT (UUID v7), times are
-- BIGINT milliseconds since the Unix epoch, bodies and encoded headers are BYTEA (a BLOB in
-- SQLite, where the declared type only sets an affinity that never converts blobs).

CREATE TABLE IF NOT EXISTS queued_requests (
    id             TEXT PRIMARY KEY,
    upstream       TEXT NOT NULL,
    method         TEXT NOT NULL,
    path_and_query TEXT NOT NULL,
    headers        BYTEA NOT NULL,
    body           BYTEA NOT NULL,
    enqueued_at    BIGINT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    status         TEXT NOT NULL DEFAULT 'pending',
    status_code    BIGINT,
    reason         TEXT,
    finished_at    BIGINT,
    claimed_until  BIGINT,
    claimed_by     TEXT
);

CREATE INDEX IF NOT EXISTS queued_requests_pending
    ON queued_requests (upstream, status, enqueued_at, id);

CREATE INDEX IF NOT EXISTS queued_requests_finished
    ON queued_requests (status, finished_at);

CREATE TABLE IF NOT EXISTS cached_responses (
    upstream       TEXT NOT NULL,
    path_and_query TEXT NOT NULL,
    status         BIGINT NOT NULL,
    headers        BYTEA NOT NULL,
    body           BYTEA NOT NULL,
    stored_at      BIGINT NOT NULL,
    PRIMARY KEY (upstream, path_and_query)
);

CREATE TABLE IF NOT EXISTS breaker_transitions (
    name       TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    reason     TEXT NOT NULL,
    generation BIGINT NOT NULL,
    at         BIGINT NOT NULL
);

CREATE INDEX IF NOT EXISTS breaker_transitions_at ON breaker_transitions (at);
