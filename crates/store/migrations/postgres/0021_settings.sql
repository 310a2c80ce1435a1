-- Settings an administrator changes at run time. A value is stored as its canonical text, a
-- secret as an encrypted envelope (`encrypted` true) that names the key that sealed it. Every
-- change moves the single revision row in the same transaction (a compare-and-set on it keeps
-- two writers from overwriting each other), so a process learns that anything changed by
-- reading one number. `settings_meta` keeps named facts: the secrets' key check value, and when
-- the environment was imported.
CREATE TABLE settings (
    scope       TEXT NOT NULL,
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,
    encrypted   BOOLEAN NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE settings_revision (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    revision  BIGINT NOT NULL
);
INSERT INTO settings_revision (id, revision) VALUES (1, 0);

CREATE TABLE settings_meta (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
