-- A person's name is `staff/{employee_number}` for life (issue 25): their site is a field,
-- and the sites they have worked at are kept here, one spell per site. The HR sync closes the
-- open spell and opens one at the new site when a person's site changes. No stored staff
-- name needs rewriting: every training table keys people by employee number, and saved
-- idempotency answers are history, kept as written.
CREATE TABLE training.staff_site_spell (
    -- Orders spells begun on the same day (a move and a move back seen on one day).
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    employee_number text        NOT NULL REFERENCES training.staff (employee_number),
    site            text        NOT NULL,
    start_date      date        NOT NULL,
    -- The day the move away was seen; NULL for the current spell.
    end_date        date,
    CHECK (end_date IS NULL OR end_date >= start_date)
);
-- One current spell per person.
CREATE UNIQUE INDEX staff_site_spell_open ON training.staff_site_spell (employee_number)
    WHERE end_date IS NULL;
CREATE INDEX staff_site_spell_person ON training.staff_site_spell (employee_number, id);

-- Everyone's current site, since their hire date when known, else since they were first
-- synced (the trust's date).
INSERT INTO training.staff_site_spell (employee_number, site, start_date)
SELECT employee_number, site,
       coalesce(hire_date, (create_time AT TIME ZONE 'Europe/London')::date)
FROM training.staff
ORDER BY employee_number;
