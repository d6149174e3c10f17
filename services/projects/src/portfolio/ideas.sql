-- Ideas by site and period: see portfolio::store::IDEAS_SQL.
WITH daily AS (
  SELECT site, submit_date, state, count(*) AS n
  FROM idea
  WHERE ($1::text[] IS NULL OR site = ANY($1))
    AND ($2::date IS NULL OR submit_date >= $2)
    AND ($4::date IS NULL OR submit_date < $4)
  GROUP BY site, submit_date, state
)
SELECT site,
  -- The first day of the period of $3: month, quarter, fy (from 1 April), NULL for none.
  CASE $3::text
    WHEN 'month' THEN date_trunc('month', submit_date::timestamp)::date
    WHEN 'quarter' THEN date_trunc('quarter', submit_date::timestamp)::date
    WHEN 'fy' THEN (date_trunc('year', submit_date::timestamp - interval '3 months')
                    + interval '3 months')::date
  END AS period,
  sum(n)::bigint AS "received!",
  coalesce(sum(n) FILTER (WHERE state = 'submitted'), 0)::bigint AS "submitted!",
  coalesce(sum(n) FILTER (WHERE state = 'under_review'), 0)::bigint AS "under_review!",
  coalesce(sum(n) FILTER (WHERE state = 'accepted'), 0)::bigint AS "accepted!",
  coalesce(sum(n) FILTER (WHERE state = 'declined'), 0)::bigint AS "declined!",
  coalesce(sum(n) FILTER (WHERE state = 'merged'), 0)::bigint AS "merged!"
FROM daily GROUP BY 1, 2
