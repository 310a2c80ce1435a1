-- Who asked for each model call (`user:<id>` or `key:<id>`), for spend per person. Older
-- records have none.
ALTER TABLE cost_records ADD COLUMN subject TEXT;
