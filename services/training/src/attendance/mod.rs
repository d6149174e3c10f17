//! Registers: a session's attendance recorded in one call, all or nothing, after which
//! completions are derived for the learners in it.

use std::collections::HashSet;

use chrono::NaiveDate;
use qi_platform::{Error, Violations};
use qi_proto::training as pb;
use sqlx::PgConnection;

use crate::cohorts::{CohortRef, CohortState};
use crate::{register, staff};

/// A validated register entry.
#[derive(Debug)]
struct Entry {
    index: usize,
    site: String,
    number: String,
    status: &'static str,
}

fn validate(records: Vec<pb::AttendanceRecord>) -> Result<Vec<Entry>, Error> {
    if records.is_empty() {
        return Err(Error::invalid(
            "records",
            "a register needs at least one record",
        ));
    }
    // The most a register holds is the contract's (`max_items`), counted before decoding.
    let mut v = Violations::new();
    let mut seen = HashSet::new();
    let mut entries = Vec::with_capacity(records.len());
    for (i, r) in records.into_iter().enumerate() {
        let pb::AttendanceRecord {
            staff: name,
            status,
        } = r;
        let field = format!("records[{i}].staff");
        let parsed = v.check(staff::parse_name(&field, &name).map(Some));
        let status = match pb::AttendanceStatus::try_from(status) {
            Ok(pb::AttendanceStatus::Attended) => "attended",
            Ok(pb::AttendanceStatus::CaughtUp) => "caught_up",
            Ok(pb::AttendanceStatus::Absent) => "absent",
            Ok(pb::AttendanceStatus::Unspecified) | Err(_) => {
                v.add(
                    format!("records[{i}].status"),
                    "choose ATTENDED, CAUGHT_UP or ABSENT",
                );
                continue;
            }
        };
        match parsed {
            Some(staff::StaffName::At(site, number)) => {
                if !seen.insert(number.clone()) {
                    v.add(field, format!("{number} appears twice in this register"));
                    continue;
                }
                entries.push(Entry {
                    index: i,
                    site: site.to_string(),
                    number,
                    status,
                });
            }
            Some(staff::StaffName::AnySite(_)) => v.add(
                field,
                "name the learner's site: `sites/{site}/staff/{employee_number}`",
            ),
            None => {}
        }
    }
    v.finish()?;
    Ok(entries)
}

/// Records a register for session `number` of a locked cohort.
pub(crate) async fn record(
    conn: &mut PgConnection,
    cohort: &CohortRef,
    session_name: &str,
    number: i32,
    records: Vec<pb::AttendanceRecord>,
    today: NaiveDate,
) -> Result<pb::RecordAttendanceResponse, Error> {
    let entries = validate(records)?;
    let state = cohort.state()?;
    if !matches!(state, CohortState::Running | CohortState::Completed) {
        return Err(Error::FailedPrecondition {
            reason: "COHORT_NOT_RUNNING",
            message: format!(
                "{} is {}: registers are taken once it is running",
                cohort.name()?,
                state.column()
            ),
        });
    }
    let date: Option<NaiveDate> =
        sqlx::query_scalar("SELECT date FROM session WHERE cohort_uid = $1 AND number = $2")
            .bind(cohort.uid)
            .bind(number)
            .fetch_optional(&mut *conn)
            .await?;
    let date = date.ok_or_else(|| Error::not_found(session_name))?;
    if date > today
        && let Some(e) = entries.iter().find(|e| e.status != "absent")
    {
        return Err(Error::FailedPrecondition {
            reason: "SESSION_IN_FUTURE",
            message: format!(
                "records[{}].status: {session_name} is on {date}, in the future; nobody has attended it yet",
                e.index
            ),
        });
    }
    // Every learner must be enrolled here, under the site their name gives.
    let numbers: Vec<String> = entries.iter().map(|e| e.number.clone()).collect();
    let enrolled: Vec<(String, String)> = sqlx::query_as(
        "SELECT e.employee_number, s.site FROM enrolment e
         JOIN staff s ON s.employee_number = e.employee_number
         WHERE e.cohort_uid = $1 AND e.state = 'enrolled' AND e.employee_number = ANY($2)",
    )
    .bind(cohort.uid)
    .bind(&numbers)
    .fetch_all(&mut *conn)
    .await?;
    for e in &entries {
        if !enrolled
            .iter()
            .any(|(n, site)| *n == e.number && *site == e.site)
        {
            return Err(Error::FailedPrecondition {
                reason: "NOT_ENROLLED",
                message: format!(
                    "records[{}].staff: sites/{}/staff/{} is not enrolled in {}",
                    e.index,
                    e.site,
                    e.number,
                    cohort.name()?
                ),
            });
        }
    }
    let statuses: Vec<&str> = entries.iter().map(|e| e.status).collect();
    sqlx::query(
        "INSERT INTO attendance (cohort_uid, session_number, employee_number, status)
         SELECT $1, $2, n, s FROM UNNEST($3::text[], $4::text[]) AS r(n, s)
         ON CONFLICT (cohort_uid, employee_number, session_number)
         DO UPDATE SET status = EXCLUDED.status, recorded_time = now()",
    )
    .bind(cohort.uid)
    .bind(number)
    .bind(&numbers)
    .bind(&statuses)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE session SET register_taken = true WHERE cohort_uid = $1 AND number = $2 AND NOT register_taken")
        .bind(cohort.uid)
        .bind(number)
        .execute(&mut *conn)
        .await?;
    let new_completions = register::derive(conn, cohort, &numbers).await?;
    Ok(pb::RecordAttendanceResponse {
        recorded: i32::try_from(entries.len()).unwrap_or(i32::MAX),
        new_completions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(staff: &str, status: pb::AttendanceStatus) -> pb::AttendanceRecord {
        pb::AttendanceRecord {
            staff: staff.into(),
            status: status as i32,
        }
    }

    #[test]
    fn a_register_names_each_bad_record() {
        let err = validate(vec![
            rec("sites/BAS/staff/10000001", pb::AttendanceStatus::Attended),
            rec("sites/BAS/staff/10000001", pb::AttendanceStatus::Absent),
            rec("sites/BAS/staff/x", pb::AttendanceStatus::Attended),
            rec(
                "sites/BAS/staff/10000002",
                pb::AttendanceStatus::Unspecified,
            ),
            rec("sites/-/staff/10000003", pb::AttendanceStatus::Attended),
        ])
        .unwrap_err();
        let Error::InvalidArgument { violations } = err else {
            panic!("expected invalid argument")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "records[1].staff",
                "records[2].staff",
                "records[3].status",
                "records[4].staff"
            ]
        );
    }

    #[test]
    fn an_empty_register_is_refused() {
        assert!(validate(vec![]).is_err());
    }
}
