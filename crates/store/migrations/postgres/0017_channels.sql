-- Chat channels. A platform account (Telegram user id, Discord snowflake) linked to a user of
-- a tenant; one-time link codes (only their SHA-256); the inbound updates some process took
-- (so none is handled twice, across restarts and replicas); where reading each channel stands;
-- and which process reads a bot (one poller per token).
CREATE TABLE channel_identities (
    tenant_id        TEXT NOT NULL,
    channel          TEXT NOT NULL,
    external_id      TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    display          TEXT NOT NULL,
    chat_id          TEXT,
    locale           TEXT,
    persona          TEXT,
    conversation_id  TEXT,
    blocked_at       BIGINT,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel, external_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
);
CREATE INDEX channel_identities_by_user ON channel_identities (tenant_id, user_id);

CREATE TABLE channel_link_codes (
    code_hash   TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE TABLE channel_updates (
    tenant_id  TEXT NOT NULL,
    channel    TEXT NOT NULL,
    update_key TEXT NOT NULL,
    taken_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel, update_key)
);
CREATE INDEX channel_updates_by_time ON channel_updates (taken_at);

CREATE TABLE channel_cursors (
    tenant_id   TEXT NOT NULL,
    channel     TEXT NOT NULL,
    position    TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, channel)
);

CREATE TABLE channel_leases (
    bot         TEXT PRIMARY KEY NOT NULL,
    owner       TEXT NOT NULL,
    held_until  BIGINT NOT NULL
);
