-- Nightly extracts (issue 37) read PDSA cycles by when they last changed, oldest first, a page
-- at a time along this index.
CREATE INDEX pdsa_cycle_update_time ON projects.pdsa_cycle (update_time, project_uid, number);
