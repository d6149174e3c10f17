-- Wards, ideas, projects (aims, teams, measures, PDSA cycles, progress scores,
-- co-production, outcomes), programmes, ward-programme waves and ward enrolments.
-- Rows carry an internal `uid` (a UUIDv7 assigned by the service, so it sorts by creation);
-- resource names are built from (site, id). Other services' resources (staff, cohorts,
-- metrics) are stored as their resource names only: this schema never reads theirs.

-- `sites/{site}/wards/{id}`.
CREATE TABLE projects.ward (
    site         text        NOT NULL,
    id           text        NOT NULL,
    display_name text        NOT NULL,
    specialty    text        NOT NULL DEFAULT '',
    create_time  timestamptz NOT NULL DEFAULT now(),
    update_time  timestamptz NOT NULL DEFAULT now(),
    revision     bigint      NOT NULL DEFAULT 1,
    PRIMARY KEY (site, id)
);
CREATE TRIGGER ward_touch BEFORE UPDATE ON projects.ward
    FOR EACH ROW EXECUTE FUNCTION projects.touch_update_time();

-- `sites/{site}/programmes/{id}`, or `trust/programmes/{id}` when site is NULL.
CREATE TABLE projects.programme (
    uid                 uuid        PRIMARY KEY,
    site                text,
    id                  text        NOT NULL,
    display_name        text        NOT NULL,
    description         text        NOT NULL DEFAULT '',
    kind                text        NOT NULL
        CHECK (kind IN ('training_wrapped', 'ward_programme', 'thematic')),
    cohort              text,
    theme               text,
    -- The ward programme's wave plan (all NULL until PlanWaves).
    first_wave_date     date,
    interval_months     integer     CHECK (interval_months BETWEEN 1 AND 24),
    wards_per_wave      integer     CHECK (wards_per_wave BETWEEN 1 AND 100),
    per_site            boolean     NOT NULL DEFAULT false,
    plan_end_date       date,
    target_wards        integer     NOT NULL DEFAULT 0 CHECK (target_wards >= 0),
    reassessment_months integer     NOT NULL DEFAULT 6 CHECK (reassessment_months BETWEEN 1 AND 60),
    create_time         timestamptz NOT NULL DEFAULT now(),
    update_time         timestamptz NOT NULL DEFAULT now(),
    revision            bigint      NOT NULL DEFAULT 1,
    CHECK ((kind = 'training_wrapped') = (cohort IS NOT NULL)),
    CHECK ((kind = 'thematic') = (theme IS NOT NULL))
);
-- One name per programme: NULL (trust-wide) sites compare equal here.
CREATE UNIQUE INDEX programme_name ON projects.programme (coalesce(site, ''), id);
CREATE TRIGGER programme_touch BEFORE UPDATE ON projects.programme
    FOR EACH ROW EXECUTE FUNCTION projects.touch_update_time();

-- `sites/{lead_site}/projects/{id}`; ids are unique across the trust so that
-- `sites/-/projects/{id}` finds a project from any of its sites.
CREATE TABLE projects.project (
    uid                    uuid        PRIMARY KEY,
    lead_site              text        NOT NULL,
    id                     text        NOT NULL UNIQUE,
    title                  text        NOT NULL,
    description            text        NOT NULL DEFAULT '',
    participating_sites    text[]      NOT NULL DEFAULT '{}',
    -- Ward names (`sites/{site}/wards/{id}`), checked against projects.ward on every write.
    wards                  text[]      NOT NULL DEFAULT '{}',
    programme_uid          uuid        REFERENCES projects.programme (uid),
    cohort                 text,
    aim_statement          text,
    aim_measure            text,
    aim_metric             text,
    aim_baseline           double precision,
    aim_target             double precision,
    aim_unit               text,
    aim_date               date,
    state                  text        NOT NULL DEFAULT 'scoping'
        CHECK (state IN ('scoping', 'in_progress', 'completed', 'stopped')),
    -- The day the project entered its current state: what the portfolio groups by.
    state_date             date        NOT NULL DEFAULT (now() AT TIME ZONE 'Europe/London')::date,
    start_date             date,
    end_date               date,
    stop_reason            text,
    outcome_summary        text,
    progress_score         double precision
        CHECK (progress_score BETWEEN 0.5 AND 5 AND progress_score * 2 = round(progress_score * 2)),
    patient_involvement    text,
    -- Kept by the writes that add or remove them, so the portfolio needs no joins.
    patient_partner_count  integer     NOT NULL DEFAULT 0 CHECK (patient_partner_count >= 0),
    engagement_count       integer     NOT NULL DEFAULT 0 CHECK (engagement_count >= 0),
    create_time            timestamptz NOT NULL DEFAULT now(),
    update_time            timestamptz NOT NULL DEFAULT now(),
    revision               bigint      NOT NULL DEFAULT 1,
    -- An aim is whole or absent: a statement, a measure, baseline and target, unit and date.
    CHECK (num_nulls(aim_statement, aim_measure, aim_baseline, aim_target, aim_unit, aim_date) IN (0, 6)),
    CHECK ((state = 'stopped') = (stop_reason IS NOT NULL)),
    CHECK ((state = 'completed') = (outcome_summary IS NOT NULL)),
    CHECK (state = 'scoping' OR start_date IS NOT NULL OR state = 'stopped'),
    CHECK (end_date IS NULL OR start_date IS NULL OR end_date >= start_date)
);
CREATE INDEX project_lead ON projects.project (lead_site, uid DESC);
CREATE INDEX project_participating ON projects.project USING gin (participating_sites);
CREATE INDEX project_programme ON projects.project (programme_uid) WHERE programme_uid IS NOT NULL;
-- The portfolio: projects by lead site and the day they entered their current state.
CREATE INDEX project_portfolio ON projects.project (lead_site, state_date);
CREATE TRIGGER project_touch BEFORE UPDATE ON projects.project
    FOR EACH ROW EXECUTE FUNCTION projects.touch_update_time();

-- `sites/{site}/ideas/{id}`.
CREATE TABLE projects.idea (
    uid                uuid        PRIMARY KEY,
    site               text        NOT NULL,
    id                 text        NOT NULL,
    title              text        NOT NULL,
    description        text        NOT NULL DEFAULT '',
    ward_id            text,
    submitter          text        NOT NULL,
    submitter_staff    text,
    theme              text        NOT NULL DEFAULT '',
    state              text        NOT NULL DEFAULT 'submitted'
        CHECK (state IN ('submitted', 'under_review', 'accepted', 'declined', 'merged')),
    decline_reason     text,
    merged_idea_uid    uuid        REFERENCES projects.idea (uid),
    merged_project_uid uuid        REFERENCES projects.project (uid),
    project_uid        uuid        UNIQUE REFERENCES projects.project (uid),
    reopen_reason      text,
    decision_time      timestamptz,
    create_time        timestamptz NOT NULL DEFAULT now(),
    -- The trust-local day it was submitted: what the portfolio groups by, with no
    -- per-row time zone arithmetic at query time.
    submit_date        date        NOT NULL DEFAULT (now() AT TIME ZONE 'Europe/London')::date,
    update_time        timestamptz NOT NULL DEFAULT now(),
    revision           bigint      NOT NULL DEFAULT 1,
    UNIQUE (site, id),
    FOREIGN KEY (site, ward_id) REFERENCES projects.ward (site, id),
    CHECK ((state = 'declined') = (decline_reason IS NOT NULL)),
    CHECK ((state = 'accepted') = (project_uid IS NOT NULL)),
    CHECK ((state = 'merged') = (num_nonnulls(merged_idea_uid, merged_project_uid) = 1)),
    CHECK (merged_idea_uid IS DISTINCT FROM uid)
);
-- Lists (newest first within a site) and the portfolio (by site and submission time).
CREATE INDEX idea_list ON projects.idea (site, uid DESC);
CREATE INDEX idea_portfolio ON projects.idea (site, submit_date) INCLUDE (state);
CREATE TRIGGER idea_touch BEFORE UPDATE ON projects.idea
    FOR EACH ROW EXECUTE FUNCTION projects.touch_update_time();

ALTER TABLE projects.project
    ADD COLUMN idea_uid uuid UNIQUE REFERENCES projects.idea (uid);

-- Benefits claimed at completion, in the order given.
CREATE TABLE projects.benefit (
    project_uid uuid             NOT NULL REFERENCES projects.project (uid),
    position    integer          NOT NULL,
    kind        text             NOT NULL CHECK (kind IN ('bed_days_saved', 'complaints_avoided',
                    'staff_hours_released', 'cost_saved', 'harm_events_avoided', 'other')),
    value       double precision NOT NULL CHECK (value >= 0),
    unit        text             NOT NULL,
    description text             NOT NULL DEFAULT '',
    PRIMARY KEY (project_uid, position)
);

-- `{project}/progressScores/{number}`: every score ever given, in order.
CREATE TABLE projects.progress_score (
    project_uid   uuid             NOT NULL REFERENCES projects.project (uid),
    number        integer          NOT NULL CHECK (number >= 1),
    score         double precision NOT NULL
        CHECK (score BETWEEN 0.5 AND 5 AND score * 2 = round(score * 2)),
    assessed_date date             NOT NULL,
    note          text             NOT NULL DEFAULT '',
    recorded_by   text             NOT NULL,
    create_time   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (project_uid, number)
);

-- `{project}/teamMembers/{id}`: staff by their resource name, or a patient partner (no
-- staff name: a named person who is not staff).
CREATE TABLE projects.team_member (
    project_uid  uuid        NOT NULL REFERENCES projects.project (uid),
    id           uuid        NOT NULL,
    staff        text,
    display_name text        NOT NULL DEFAULT '',
    role         text        NOT NULL
        CHECK (role IN ('lead', 'member', 'sponsor', 'coach', 'patient_partner')),
    affiliation  text        NOT NULL DEFAULT '',
    create_time  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_uid, id),
    UNIQUE (project_uid, staff),
    CHECK ((role = 'patient_partner') = (staff IS NULL)),
    CHECK (staff IS NOT NULL OR display_name <> '')
);

-- `{project}/measures/{id}`.
CREATE TABLE projects.measure (
    project_uid uuid        NOT NULL REFERENCES projects.project (uid),
    id          uuid        NOT NULL,
    metric      text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('outcome', 'process', 'balancing')),
    note        text        NOT NULL DEFAULT '',
    create_time timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_uid, id),
    UNIQUE (project_uid, metric)
);

-- `{project}/pdsaCycles/{number}`, numbered in order under the project's row lock.
CREATE TABLE projects.pdsa_cycle (
    project_uid uuid        NOT NULL REFERENCES projects.project (uid),
    number      integer     NOT NULL CHECK (number >= 1),
    change_idea text        NOT NULL,
    objective   text        NOT NULL,
    prediction  text        NOT NULL,
    plan        text        NOT NULL DEFAULT '',
    do_notes    text        NOT NULL DEFAULT '',
    study_notes text        NOT NULL DEFAULT '',
    act_notes   text        NOT NULL DEFAULT '',
    start_date  date,
    end_date    date,
    decision    text        CHECK (decision IN ('adopt', 'adapt', 'abandon')),
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    revision    bigint      NOT NULL DEFAULT 1,
    PRIMARY KEY (project_uid, number),
    CHECK (end_date IS NULL OR start_date IS NULL OR end_date >= start_date)
);
CREATE TRIGGER pdsa_cycle_touch BEFORE UPDATE ON projects.pdsa_cycle
    FOR EACH ROW EXECUTE FUNCTION projects.touch_update_time();

-- `{project}/engagementActivities/{id}`.
CREATE TABLE projects.engagement_activity (
    project_uid   uuid        NOT NULL REFERENCES projects.project (uid),
    id            uuid        NOT NULL,
    activity_date date        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('survey', 'interview', 'focus_group',
                      'workshop', 'patient_story', 'other')),
    participants  integer     NOT NULL CHECK (participants BETWEEN 1 AND 100000),
    summary       text        NOT NULL,
    create_time   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_uid, id)
);

-- `{programme}/waves/{number}`.
CREATE TABLE projects.wave (
    programme_uid uuid    NOT NULL REFERENCES projects.programme (uid),
    number        integer NOT NULL CHECK (number >= 1),
    start_date    date    NOT NULL,
    capacity      integer NOT NULL CHECK (capacity BETWEEN 1 AND 100),
    PRIMARY KEY (programme_uid, number)
);

-- `{programme}/wardEnrolments/{site-lower}-{ward}`: one per ward and programme.
CREATE TABLE projects.ward_enrolment (
    programme_uid      uuid        NOT NULL,
    ward_site          text        NOT NULL,
    ward_id            text        NOT NULL,
    wave_number        integer     NOT NULL,
    stage              text        NOT NULL DEFAULT 'diagnostic'
        CHECK (stage IN ('diagnostic', 'assessment', 'accredited', 'withdrawn')),
    rating             text        CHECK (rating IN ('bronze', 'silver', 'gold')),
    standards_met      integer,
    standards_assessed integer,
    diagnostic_date    date        NOT NULL,
    assessment_date    date,
    accredited_date    date,
    reassessment_due   date,
    withdraw_reason    text,
    create_time        timestamptz NOT NULL DEFAULT now(),
    update_time        timestamptz NOT NULL DEFAULT now(),
    revision           bigint      NOT NULL DEFAULT 1,
    PRIMARY KEY (programme_uid, ward_site, ward_id),
    FOREIGN KEY (programme_uid, wave_number) REFERENCES projects.wave (programme_uid, number),
    FOREIGN KEY (ward_site, ward_id) REFERENCES projects.ward (site, id),
    CHECK ((stage = 'withdrawn') = (withdraw_reason IS NOT NULL)),
    CHECK (standards_met IS NULL OR standards_met BETWEEN 0 AND standards_assessed)
);
CREATE INDEX ward_enrolment_wave ON projects.ward_enrolment (programme_uid, wave_number, ward_site);
CREATE TRIGGER ward_enrolment_touch BEFORE UPDATE ON projects.ward_enrolment
    FOR EACH ROW EXECUTE FUNCTION projects.touch_update_time();
