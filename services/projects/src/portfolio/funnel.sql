-- The idea funnel: see portfolio::store::FUNNEL_SQL.
WITH scoped AS (
  SELECT uid FROM idea
  WHERE ($1::text[] IS NULL OR site = ANY($1))
    AND ($2::date IS NULL OR submit_date >= $2)
    AND ($3::date IS NULL OR submit_date < $3)
), steps AS (
  -- Each state an idea entered, and when it left it (NULL: it is there now).
  SELECT e.idea_uid, e.state, e.event_time,
         lead(e.event_time) OVER (PARTITION BY e.idea_uid ORDER BY e.seq) AS left_time
  FROM idea_event e JOIN scoped s ON s.uid = e.idea_uid
), stays AS (
  -- An idea's time in a stage, over every visit (a reopened idea is reviewed twice).
  SELECT idea_uid, state,
         sum(extract(epoch FROM left_time - event_time)) / 86400 AS days,
         max(event_time) FILTER (WHERE left_time IS NULL) AS waiting_since
  FROM steps GROUP BY idea_uid, state
), onward AS (
  SELECT idea_uid,
         bool_or(state IN ('under_review', 'accepted')) AS reviewed,
         bool_or(state = 'accepted') AS accepted
  FROM steps GROUP BY idea_uid
)
SELECT st.state AS "state!",
  count(*) AS "entered!",
  -- Only triage stages are left in the course of things (a reopening leaves DECLINED).
  (CASE WHEN st.state IN ('submitted', 'under_review') THEN
     percentile_cont(0.5) WITHIN GROUP (ORDER BY st.days)
       FILTER (WHERE st.waiting_since IS NULL)
   END)::float8 AS median_days,
  (CASE st.state
     WHEN 'submitted' THEN avg(o.reviewed::int)
     WHEN 'under_review' THEN avg(o.accepted::int)
   END)::float8 AS conversion,
  count(*) FILTER (WHERE st.waiting_since IS NOT NULL) AS "waiting!",
  -- Only triage waits: a decided idea has nothing left to wait for.
  count(*) FILTER (WHERE st.state IN ('submitted', 'under_review')
                     AND st.waiting_since < now() - make_interval(days => $4)) AS "overdue!"
FROM stays st JOIN onward o USING (idea_uid)
GROUP BY st.state
