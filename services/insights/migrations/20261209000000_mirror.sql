-- The read model's intake (qi_insights::intake): each service's change feed, followed
-- straight from the service, mirrored here.

-- How far each service's feed has been applied: the cursor after the last change applied,
-- written in the same transaction as the change, so a restart resumes exactly there.
CREATE TABLE insights.feed (
    service text PRIMARY KEY,
    cursor text NOT NULL,
    update_time timestamptz NOT NULL DEFAULT now()
);

-- Every resource as its service's feed last delivered it: the feed's message whole (the
-- service's WatchChangesResponse, resource included), keyed by service and resource name. A
-- deleted resource's row is gone. The answers read their typed projections from here.
CREATE TABLE insights.resource (
    service text NOT NULL,
    name text NOT NULL,
    collection text NOT NULL,
    message bytea NOT NULL,
    commit_time timestamptz NOT NULL,
    PRIMARY KEY (service, name)
);

CREATE INDEX resource_by_collection ON insights.resource (service, collection);
