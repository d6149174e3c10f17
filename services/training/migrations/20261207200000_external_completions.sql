-- Completions from elsewhere (issue 28): training done before the system existed (the
-- historic register), competences ESR holds (from an extract), and training done at another
-- trust (ESR's Inter Authority Transfer). They live in the register beside the completions
-- earned here, so every count of the register (the list, the summary, the export to ESR)
-- takes them without a second query; what tells them apart is `source`.
--
-- An imported completion has no cohort: `cohort_uid` is NULL exactly when `source` is not
-- 'course'. Its evidence: a reference (the register and its entry, the extract, the
-- transfer), the organisation it was achieved at (required for a transfer), and who
-- imported it when. Imports are idempotent by person, course and date: the partial unique
-- index is the key a re-import meets. The constant defaults rewrite no existing row.
ALTER TABLE training.completion
    ALTER COLUMN cohort_uid DROP NOT NULL,
    ADD COLUMN source text NOT NULL DEFAULT 'course'
        CHECK (source IN ('course', 'historic', 'esr', 'transfer')),
    ADD COLUMN source_reference text NOT NULL DEFAULT ''
        CHECK (char_length(source_reference) <= 200),
    ADD COLUMN previous_organisation text NOT NULL DEFAULT ''
        CHECK (char_length(previous_organisation) <= 200),
    ADD COLUMN imported_by text NOT NULL DEFAULT '',
    ADD CONSTRAINT completion_source_cohort
        CHECK ((source = 'course') = (cohort_uid IS NOT NULL)),
    ADD CONSTRAINT completion_transfer_organisation
        CHECK (source <> 'transfer' OR previous_organisation <> '');

CREATE UNIQUE INDEX completion_imported
    ON training.completion (employee_number, course_id, completion_date)
    WHERE cohort_uid IS NULL;
-- A person's completions of a course, for "never override one earned here".
CREATE INDEX completion_staff_course ON training.completion (employee_number, course_id);
