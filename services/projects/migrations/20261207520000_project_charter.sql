-- A fuller project charter (#34 part 1): the problem it addresses, its scope in and out,
-- its stakeholders, the kinds of benefit it expects, its theme, and where the work is in
-- the QSIR project stages. The phase is a label, not a second lifecycle: `state` and its
-- transitions stay as they are.
ALTER TABLE projects.project
    ADD COLUMN problem_statement text   NOT NULL DEFAULT '',
    ADD COLUMN scope_in          text   NOT NULL DEFAULT '',
    ADD COLUMN scope_out         text   NOT NULL DEFAULT '',
    ADD COLUMN stakeholders      text[] NOT NULL DEFAULT '{}',
    ADD COLUMN expected_benefits text[] NOT NULL DEFAULT '{}'
        CHECK (expected_benefits <@ ARRAY['bed_days_saved', 'complaints_avoided',
               'staff_hours_released', 'cost_saved', 'harm_events_avoided', 'other']),
    ADD COLUMN theme             text   NOT NULL DEFAULT '',
    ADD COLUMN qsir_phase        text
        CHECK (qsir_phase IN ('start_out', 'define_and_scope', 'measure_and_understand',
               'design_and_plan', 'pilot_and_implement', 'sustain_and_share')),
    -- Starting a project now needs a problem statement as well as an aim. Projects that
    -- exist before this change are exempt: they were scoped (and many started) under the
    -- old rule, and refusing to start one that is ready would only make its team type a
    -- statement to get past the check. The column defaults to true for every existing row,
    -- then to false for every new one.
    ADD COLUMN charter_exempt    boolean NOT NULL DEFAULT true;
ALTER TABLE projects.project ALTER COLUMN charter_exempt SET DEFAULT false;

-- A project from an idea takes the idea's theme, as AcceptIdea now copies it.
UPDATE projects.project p SET theme = i.theme
FROM projects.idea i WHERE i.uid = p.idea_uid AND i.theme <> '';
