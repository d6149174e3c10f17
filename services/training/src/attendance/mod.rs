//! Registers: a session's attendance recorded in one call, all or nothing, after which
//! completions are derived for the learners in it. The handler and the checks of a register.

mod store;

use qi_platform::names::OwnerAccess as _;
use std::collections::HashSet;

use qi_platform::changes::Kind;
use qi_platform::{AccessContext, Error, Violations};
use qi_proto::training as pb;

use crate::cohorts::{self, CohortState};
use crate::{TrainingApi, enrolments, register, sessions, staff};

/// A validated register entry.
#[derive(Debug)]
struct Entry {
    index: usize,
    number: String,
    status: &'static str,
}

/// Checks a register: each learner named once (`staff/me` is the caller, `ctx`), each with a
/// status.
fn validate(ctx: &AccessContext, records: Vec<pb::AttendanceRecord>) -> Result<Vec<Entry>, Error> {
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
        let parsed = v.check(
            staff::parse_name(&field, &name)
                .and_then(|p| staff::number_of(ctx, p))
                .map(Some),
        );
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
        if let Some(number) = parsed {
            let number = String::from(number);
            if !seen.insert(number.clone()) {
                v.add(field, format!("{number} appears twice in this register"));
                continue;
            }
            entries.push(Entry {
                index: i,
                number,
                status,
            });
        }
    }
    v.finish()?;
    Ok(entries)
}

/// RecordAttendance: a session's register, all or nothing, once the cohort is running;
/// returns the completions it newly achieves.
pub(crate) async fn record(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::RecordAttendanceRequest,
) -> Result<pb::RecordAttendanceResponse, Error> {
    let pb::RecordAttendanceRequest { session, records } = req;
    let (owner, cohort_id, number) = sessions::parse_name("session", &session)?;
    owner.check_write(&ctx)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let cohort = cohorts::store::locate(&mut tx, &owner, &cohort_id, true)
        .await?
        .ok_or_else(|| Error::not_found(&session))?;
    let today = qi_platform::calendar::today();
    let entries = validate(&ctx, records)?;
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
    let date = sessions::store::date_of(&mut tx, cohort.uid, number)
        .await?
        .ok_or_else(|| Error::not_found(&session))?;
    if date > today
        && let Some(e) = entries.iter().find(|e| e.status != "absent")
    {
        return Err(Error::FailedPrecondition {
            reason: "SESSION_IN_FUTURE",
            message: format!(
                "records[{}].status: {session} is on {date}, in the future; nobody has attended it yet",
                e.index
            ),
        });
    }
    // Every learner must be enrolled here, wherever they work now: the cohort's site (which
    // the caller holds) vouches for its roster.
    let numbers: Vec<String> = entries.iter().map(|e| e.number.clone()).collect();
    let enrolled = store::enrolled(&mut tx, cohort.uid, &numbers).await?;
    for e in &entries {
        if !enrolled.contains(&e.number) {
            return Err(Error::FailedPrecondition {
                reason: "NOT_ENROLLED",
                message: format!(
                    "records[{}].staff: {} is not enrolled in {}",
                    e.index,
                    staff::name_of(&e.number),
                    cohort.name()?
                ),
            });
        }
    }
    let statuses: Vec<&str> = entries.iter().map(|e| e.status).collect();
    store::record(&mut tx, cohort.uid, number, &numbers, &statuses).await?;
    let taken = sessions::store::mark_register_taken(&mut tx, cohort.uid, number).await?;
    // Records the completions it achieves, moves or revokes.
    let new_completions = register::derive(&mut tx, &cohort, &numbers).await?;
    // Each learner's enrolment shows their attendance (and completion), as it now is.
    enrolments::record_changes(&mut tx, &cohort, &numbers, Kind::Updated).await?;
    if let Some(taken) = taken {
        let session = sessions::store::to_proto(&cohort.name()?, taken);
        let sites = cohorts::feed_sites(&cohort);
        let kind = Kind::Updated;
        crate::feed::record(
            &mut tx,
            sessions::COLLECTION,
            &session.name,
            kind,
            sites,
            &session,
        )
        .await?;
    }
    tx.commit().await?;
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

    fn ctx(employee: Option<&str>) -> AccessContext {
        AccessContext {
            subject: "lead".into(),
            roles: vec!["improvement_team".into()],
            sites: qi_platform::SiteScope::from_claim(&["BAS".into()]).unwrap(),
            method: String::new(),
            employee: employee.map(|n| qi_platform::EmployeeNumber::parse(n).unwrap()),
            employee_claim: Default::default(),
            token_expiry: None,
        }
    }

    #[test]
    fn a_register_names_each_bad_record() {
        let err = validate(
            &ctx(None),
            vec![
                rec("staff/10000001", pb::AttendanceStatus::Attended),
                // The v1 alias names the same person: a repeat.
                rec("sites/BAS/staff/10000001", pb::AttendanceStatus::Absent),
                rec("staff/x", pb::AttendanceStatus::Attended),
                rec("staff/10000002", pb::AttendanceStatus::Unspecified),
                rec("sites/-/staff/1000000x", pb::AttendanceStatus::Attended),
            ],
        )
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
    fn every_form_of_a_persons_name_is_one_learner() {
        let entries = validate(
            &ctx(Some("10000004")),
            vec![
                rec("staff/10000001", pb::AttendanceStatus::Attended),
                rec("sites/SOU/staff/10000002", pb::AttendanceStatus::Absent),
                rec("sites/-/staff/10000003", pb::AttendanceStatus::CaughtUp),
                rec("staff/me", pb::AttendanceStatus::Attended),
            ],
        )
        .unwrap();
        let numbers: Vec<_> = entries.iter().map(|e| e.number.as_str()).collect();
        assert_eq!(numbers, ["10000001", "10000002", "10000003", "10000004"]);
    }

    #[test]
    fn me_in_a_register_needs_the_callers_number() {
        let err = validate(
            &ctx(None),
            vec![rec("staff/me", pb::AttendanceStatus::Attended)],
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::FailedPrecondition { reason, .. } if reason == "NO_EMPLOYEE_NUMBER"),
            "{err:?}"
        );
    }

    #[test]
    fn an_empty_register_is_refused() {
        assert!(validate(&ctx(None), vec![]).is_err());
    }
}
