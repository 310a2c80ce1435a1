-- What gate 2 does below a persona's intent threshold: hold the call for approval, or block it.

ALTER TABLE personas ADD COLUMN on_low_intent TEXT NOT NULL DEFAULT 'approve';
