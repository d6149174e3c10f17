-- Every access decision of the gateway, allow or deny.
CREATE TABLE gateway.audit_event (
    id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time      timestamptz NOT NULL,
    subject   text        NOT NULL,
    method    text        NOT NULL,
    site      text,
    resource  text,
    decision  text        NOT NULL CHECK (decision IN ('allow', 'deny')),
    code      text        NOT NULL,
    reason    text        NOT NULL,
    trace_id  text        NOT NULL
);
-- Admins page newest first, often by subject or site.
CREATE INDEX audit_event_time ON gateway.audit_event (time DESC, id DESC);
CREATE INDEX audit_event_subject ON gateway.audit_event (subject, time DESC);
CREATE INDEX audit_event_site ON gateway.audit_event (site, time DESC) WHERE site IS NOT NULL;
