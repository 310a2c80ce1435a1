-- The console's overview counts today's actions (intent seals) and refusals (gate decisions)
-- per tenant. Partial indexes hold only rows of those two kinds, and they cover the count
-- (kind is in the key), so it reads the day's index entries and never the table; appends of
-- every other kind do not touch them.
CREATE INDEX ledger_intents_by_time ON ledger_entries (tenant_id, kind, ts) WHERE kind = 'seal_intent';
CREATE INDEX ledger_refusals_by_time ON ledger_entries (tenant_id, kind, ts) WHERE kind = 'gate_decision';
