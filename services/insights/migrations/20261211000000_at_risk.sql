-- What ListProjectsAtRisk reads besides the first projections: each project's progress
-- scores and PDSA cycles, and each metric's frequency (how often data is due).

CREATE TABLE insights.progress_score (
    name text PRIMARY KEY,                 -- {project}/progressScores/{id}
    project text NOT NULL,
    assessed_date date NOT NULL
);
CREATE INDEX progress_score_by_project ON insights.progress_score (project, assessed_date);

CREATE TABLE insights.pdsa_cycle (
    name text PRIMARY KEY,                 -- {project}/pdsaCycles/{number}
    project text NOT NULL,
    number integer NOT NULL,
    end_date date,                         -- the planned end
    decision integer NOT NULL              -- qi.projects.v1.PdsaDecision (0: undecided)
);
CREATE INDEX pdsa_cycle_by_project ON insights.pdsa_cycle (project, number);

ALTER TABLE insights.metric ADD COLUMN frequency integer NOT NULL DEFAULT 0;  -- qi.metrics.v1.MetricFrequency

-- Projections added to a model already built are filled by building it again: a model with
-- no cursors is rebuilt from the services' lists when its intake next takes the lock.
DELETE FROM insights.feed;
