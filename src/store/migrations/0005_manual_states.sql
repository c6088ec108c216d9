-- Manual breaker states (reset, force-open, disable) are fleet state: one row per breaker, the
-- last operator action on it. `version` grows with every action, so a replica applies each one
-- once; `until_ms`: the end of a force-open with an end (ms since the epoch), else NULL.
CREATE TABLE IF NOT EXISTS manual_states (
    breaker TEXT PRIMARY KEY,
    action TEXT NOT NULL,
    until_ms BIGINT,
    version BIGINT NOT NULL,
    set_at BIGINT NOT NULL
);
