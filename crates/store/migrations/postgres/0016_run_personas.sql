-- The personas a run's planned steps use, as `,name,other,` (empty before planning, and for
-- runs stored before this column), so the chain list can filter by persona in the query.
ALTER TABLE runs ADD COLUMN personas TEXT NOT NULL DEFAULT '';
