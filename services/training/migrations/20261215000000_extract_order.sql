-- Nightly extracts (issue 37) read cohorts, enrolments and completions by when they last
-- changed, oldest first, a page at a time along these indexes.
CREATE INDEX cohort_update_time ON training.cohort (update_time, uid);
CREATE INDEX enrolment_update_time ON training.enrolment (update_time, cohort_uid, employee_number);

-- A completion had only its create time; it changes when its dates are corrected, when it is
-- revoked and when it is earned again. Existing rows last changed when they were made.
ALTER TABLE training.completion ADD COLUMN update_time timestamptz;
UPDATE training.completion SET update_time = create_time;
ALTER TABLE training.completion
    ALTER COLUMN update_time SET NOT NULL,
    ALTER COLUMN update_time SET DEFAULT now();
-- touch_update_time also counts revisions, which a completion has not: its own trigger.
CREATE FUNCTION training.touch_completion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.update_time := now();
    RETURN NEW;
END $$;
CREATE TRIGGER completion_touch BEFORE UPDATE ON training.completion
    FOR EACH ROW EXECUTE FUNCTION training.touch_completion();
CREATE INDEX completion_update_time ON training.completion (update_time, id);
