-- Nightly extracts (issue 37) read metrics and measurements by when they last changed,
-- oldest first, a page at a time along these indexes. A batch's rows share one time and take
-- rising ids, so ingest appends at the index's right edge.
CREATE INDEX metric_update_time ON metrics.metric (update_time, uid);
CREATE INDEX measurement_update_time ON metrics.measurement (update_time, id);
