-- The HTTP API and gateway: keys carry a role, and cost records say which key paid and which
-- provider answered, so usage can be reported by key and provider.

ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'member';
ALTER TABLE cost_records ADD COLUMN api_key_id TEXT;
ALTER TABLE cost_records ADD COLUMN provider TEXT;
