-- Plugins: each optional capability's switch and lifecycle state, the MCP servers added by hand
-- (`server`: how to reach one, as JSON, with the values of its environment and headers sealed),
-- and the tool definitions an administrator approved (`pins`: JSON, each with its SHA-256).
-- Every write is a compare-and-set on `revision`, so of several processes noticing the same
-- transition exactly one records it.
CREATE TABLE plugins (
    name        TEXT PRIMARY KEY,
    server      TEXT,
    enabled     BOOLEAN NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    pins        TEXT NOT NULL,
    revision    BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL
);
