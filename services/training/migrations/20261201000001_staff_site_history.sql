-- A person's name is `staff/{employee_number}` for life (issue 25): their site is a field,
-- `site_since` the day their current spell there began, and the spells that have ended are
-- kept in `staff_site_spell`. Only a move writes a spell, so taking in new people (most of
-- a sync) costs nothing more. No stored staff name needs rewriting: every training table
-- keys people by employee number, and saved idempotency answers are history, kept as
-- written.
ALTER TABLE training.staff ADD COLUMN site_since date;
-- Since their hire date when known, else since they were first synced (the trust's date).
UPDATE training.staff
SET site_since = coalesce(hire_date, (create_time AT TIME ZONE 'Europe/London')::date);
ALTER TABLE training.staff ALTER COLUMN site_since SET NOT NULL;

CREATE TABLE training.staff_site_spell (
    -- Orders spells that ended on the same day (a move and a move back seen on one day).
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    employee_number text        NOT NULL REFERENCES training.staff (employee_number),
    site            text        NOT NULL,
    start_date      date        NOT NULL,
    -- The day the move away was seen.
    end_date        date        NOT NULL,
    CHECK (end_date >= start_date)
);
CREATE INDEX staff_site_spell_person ON training.staff_site_spell (employee_number, id);
