-- The change feed renders an ingest's measurements at delivery, a page of ids at a time
-- (an ingest lists what it wrote instead of copying each measurement into the outbox).
-- Ids are an identity column, so this index only ever grows at its right edge.
CREATE UNIQUE INDEX measurement_id ON metrics.measurement (id);
