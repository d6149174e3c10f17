SELECT c.site, c.id, c.course_id, c.display_name, c.start_date, c.capacity, c.state,
       c.create_time, c.update_time, c.revision, c.facilitators, c.cancel_reason, c.uid,
       (SELECT count(*) FROM enrolment e
        WHERE e.cohort_uid = c.uid AND e.state = 'enrolled') AS "enrolled_count!",
       (SELECT count(*) FROM enrolment e
        WHERE e.cohort_uid = c.uid AND e.state = 'waitlisted') AS "waitlist_count!"
FROM cohort c WHERE coalesce(c.site, '') = coalesce($1, '') AND c.id = $2
