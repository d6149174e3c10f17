-- Each course names the ESR competence its completions are recorded against (issue 27), so
-- the export to ESR carries the competence's identity, not the course's title. Both are
-- per trust and set through UpdateCourse; empty means none (the title is exported instead).
-- A constant default: adding the columns rewrites no row.
ALTER TABLE training.course
    ADD COLUMN esr_competence_id text NOT NULL DEFAULT ''
        CHECK (esr_competence_id ~ '^([A-Za-z0-9][A-Za-z0-9._|-]{0,29})?$'),
    ADD COLUMN esr_competence_name text NOT NULL DEFAULT ''
        CHECK (char_length(esr_competence_name) <= 200);
