-- Nightly extracts read ideas and projects by when they last changed, oldest first
-- (ListIdeas and ListProjects with `filter = "update_time > …"` and `order_by = "update_time"`).
CREATE INDEX idea_update_time ON projects.idea (update_time, uid);
CREATE INDEX project_update_time ON projects.project (update_time, uid);
