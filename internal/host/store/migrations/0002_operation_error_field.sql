-- A failed operation keeps the request field its error names and what that
-- field accepts (api.Error.Field and Allowed), so a front end that reads
-- the operation after it finished still shows the error beside the field.
ALTER TABLE operations ADD COLUMN error_field TEXT NOT NULL DEFAULT '';
ALTER TABLE operations ADD COLUMN error_allowed TEXT NOT NULL DEFAULT '';
