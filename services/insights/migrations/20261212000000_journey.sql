-- What ExplainSignal, ListEquityOpportunities and SuggestNextWave read besides the earlier
-- projections: co-production on projects, PDSA cycles' start and change idea, each
-- measurement's stratum and each metric's ward and dimensions, and the ward programme's
-- wards, ideas, waves and enrolments.

ALTER TABLE insights.project
    ADD COLUMN patient_involvement integer NOT NULL DEFAULT 0,   -- qi.projects.v1.PatientInvolvement
    ADD COLUMN patient_partners integer NOT NULL DEFAULT 0;

ALTER TABLE insights.pdsa_cycle
    ADD COLUMN start_date date,
    ADD COLUMN change_idea text NOT NULL DEFAULT '';

-- A stratum's labels, '' where the measurement is not broken down by the dimension.
ALTER TABLE insights.measurement
    ADD COLUMN imd text NOT NULL DEFAULT '',
    ADD COLUMN ethnicity text NOT NULL DEFAULT '',
    ADD COLUMN age_band text NOT NULL DEFAULT '',
    ADD COLUMN sex text NOT NULL DEFAULT '';

ALTER TABLE insights.metric
    ADD COLUMN ward text NOT NULL DEFAULT '',              -- a ward's own metric
    ADD COLUMN dimensions integer[] NOT NULL DEFAULT '{}'; -- qi.metrics.v1.InequalityDimension

ALTER TABLE insights.programme
    ADD COLUMN kind integer NOT NULL DEFAULT 0,            -- qi.projects.v1.ProgrammeKind
    ADD COLUMN wards_per_wave integer NOT NULL DEFAULT 0;

CREATE TABLE insights.ward (
    name text PRIMARY KEY,                 -- sites/{site}/wards/{ward}
    site text NOT NULL,
    display_name text NOT NULL
);
CREATE INDEX ward_by_site ON insights.ward (site);

CREATE TABLE insights.idea (
    name text PRIMARY KEY,                 -- sites/{site}/ideas/{id}
    ward text NOT NULL,
    state integer NOT NULL                 -- qi.projects.v1.IdeaState
);
CREATE INDEX idea_by_ward ON insights.idea (ward) WHERE ward <> '';

CREATE TABLE insights.wave (
    name text PRIMARY KEY,                 -- {programme}/waves/{number}
    programme text NOT NULL,
    number integer NOT NULL,
    start_date date NOT NULL
);
CREATE INDEX wave_by_programme ON insights.wave (programme, start_date);

CREATE TABLE insights.ward_enrolment (
    name text PRIMARY KEY,                 -- {programme}/wardEnrolments/{id}
    programme text NOT NULL,
    ward text NOT NULL,
    stage integer NOT NULL                 -- qi.projects.v1.WardStage
);
CREATE INDEX ward_enrolment_by_programme ON insights.ward_enrolment (programme);

-- As before: a model with no cursors is rebuilt from the services' lists, which fills the
-- new columns and tables.
DELETE FROM insights.feed;
