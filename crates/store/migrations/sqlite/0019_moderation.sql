-- Community moderation: each flagged message's case (what was judged, by whom, what was done,
-- what staff decided) and the per-category strictness staff verdicts teach the gate.
-- A case is decided once: its status leaves 'acted', 'dry_run' or 'review' by one UPDATE.
CREATE TABLE moderation_cases (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    scope        TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX moderation_cases_by_status ON moderation_cases (tenant_id, status, created_at);

CREATE TABLE moderation_strictness (
    tenant_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    category    TEXT NOT NULL,
    adjustment  REAL NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, scope, category)
);
