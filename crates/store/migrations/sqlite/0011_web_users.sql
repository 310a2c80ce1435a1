-- Console sign-in: a user's credentials (one row per user who can sign in) and sessions.
-- Emails are stored lower-cased and are unique across tenants: they are what a person signs
-- in with. Sessions keep only the SHA-256 of the cookie's token.
CREATE TABLE web_logins (
    tenant_id      TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    locale         TEXT,
    PRIMARY KEY (tenant_id, user_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);

CREATE TABLE web_sessions (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    csrf        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX web_sessions_by_user ON web_sessions (tenant_id, user_id);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
