-- Admins list a subject's (or a site's) events newest first, by id. The (…, time DESC)
-- indexes could not give that order, so for a subject whose events are not recent
-- PostgreSQL walked the primary key back through everyone's newer events (2M rows, a
-- subject with 0.1% of them: 4.9 ms, and worse the older its events). Keyed on id, the page
-- is one backward index scan (0.12 ms). Ascending, so a new event lands at the right-hand
-- end of its subject's range instead of splitting pages at the left. The BRIN index still
-- serves time-range filters. Built in the migration's transaction: writes to the trail wait
-- for it, and the gateway's audit queue holds events meanwhile.
DROP INDEX gateway.audit_event_subject;
DROP INDEX gateway.audit_event_site;
CREATE INDEX audit_event_subject ON gateway.audit_event (subject, id);
CREATE INDEX audit_event_site ON gateway.audit_event (site, id) WHERE site IS NOT NULL;
