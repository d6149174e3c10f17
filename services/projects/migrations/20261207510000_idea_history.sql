-- The idea funnel's history (#34 part 3): every state an idea enters, with when, who and
-- why, so the portfolio can report time in each stage and conversion between stages as
-- KaiNexus does; and the reviewer an idea is assigned to.
CREATE TABLE projects.idea_event (
    idea_uid    uuid        NOT NULL REFERENCES projects.idea (uid),
    seq         integer     NOT NULL CHECK (seq >= 1),
    state       text        NOT NULL
        CHECK (state IN ('submitted', 'under_review', 'accepted', 'declined', 'merged')),
    event_time  timestamptz NOT NULL,
    -- The caller's token subject, and the staff member (`staff/{employee}`) when the token
    -- named one.
    actor       text        NOT NULL,
    actor_staff text,
    -- Why: a decline's or a reopening's reason, empty otherwise.
    reason      text        NOT NULL DEFAULT '',
    PRIMARY KEY (idea_uid, seq)
);
-- The funnel reads events by state.
CREATE INDEX idea_event_state ON projects.idea_event (state, event_time);

-- Ideas from before this change: their submission, at noon on the day they were
-- submitted, and, when they have moved on, the state they are in now, at their decision
-- time (or their last change). The steps between (a review before a decision) were not
-- kept and are not invented: such an idea counts in the funnel as passing from submitted
-- straight to its state. Marked by the actor `history-backfill`.
INSERT INTO projects.idea_event (idea_uid, seq, state, event_time, actor)
SELECT uid, 1, 'submitted',
       least((submit_date + time '12:00') AT TIME ZONE 'Europe/London', create_time),
       'history-backfill'
FROM projects.idea;
INSERT INTO projects.idea_event (idea_uid, seq, state, event_time, actor, reason)
SELECT uid, 2, state, coalesce(decision_time, update_time), 'history-backfill',
       coalesce(decline_reason, reopen_reason, '')
FROM projects.idea WHERE state <> 'submitted';

ALTER TABLE projects.idea ADD COLUMN reviewer text;
