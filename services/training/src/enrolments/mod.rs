//! Enrolment (`{cohort}/enrolments/{employee_number}`): places up to the cohort's capacity,
//! then a waitlist promoted in order when a place frees. Every change locks the cohort's row
//! first, so concurrent enrolments never overfill it. The handlers and the rules of who may
//! join.

pub(crate) mod store;

use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{self, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, idempotency};
use qi_proto::training as pb;

use crate::{TrainingApi, cohorts, staff};

/// The collection id in enrolment names.
pub(crate) const COLLECTION: &str = "enrolments";

/// Parses `{cohort}/enrolments/{employee_number}` into the cohort's owner and id and the number.
pub(crate) fn parse_name(field: &str, value: &str) -> Result<(Owner, String, String), Error> {
    let (owner, ids) = names::parse_nested(field, value, &[cohorts::COLLECTION, COLLECTION])?;
    let [cohort, number]: [String; 2] = ids
        .try_into()
        .map_err(|_| Error::invalid(field, "expected a cohort and an employee number"))?;
    names::validate_id(field, &cohort)?;
    let number = staff::employee_number(field, &number)?;
    Ok((owner, cohort, number))
}

/// CreateEnrolment: a place on the cohort, or the waitlist when it is full.
pub(crate) async fn create(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::CreateEnrolmentRequest,
) -> Result<pb::CreateEnrolmentResponse, Error> {
    idempotency::validate_request_id(&req.request_id)?;
    let staff_name = req
        .enrolment
        .as_ref()
        .map(|e| e.staff.clone())
        .ok_or_else(|| Error::invalid("enrolment", "is required"))?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let cohort = cohorts::resolve(&mut tx, &ctx, "parent", &req.parent, true, true).await?;
    idempotency::once(tx, &ctx, &req.request_id, &req, async |tx| {
        let staff_field = "enrolment.staff";
        let state = cohort.state()?;
        if !state.takes_enrolments() {
            return Err(Error::FailedPrecondition {
                reason: "COHORT_CLOSED",
                message: format!(
                    "{} is {}: it takes no more learners",
                    cohort.name()?,
                    state.column()
                ),
            });
        }
        // Named as GetStaff reads a person: out of the caller's sites is PERMISSION_DENIED,
        // whether or not they exist; absent, for a caller who may know, the rule broken.
        let learner = staff::read(&mut *tx, &ctx, staff_field, &staff_name)
            .await
            .map_err(|e| {
                if matches!(e, Error::NotFound { .. }) {
                    Error::FailedPrecondition {
                        reason: "STAFF_NOT_FOUND",
                        message: format!("{staff_field}: {staff_name} does not exist"),
                    }
                } else {
                    e
                }
            })?;
        if !learner.active {
            return Err(Error::FailedPrecondition {
                reason: "STAFF_INACTIVE",
                message: format!("{staff_field}: {} has left the trust", learner.name()),
            });
        }
        if let Some(site) = &cohort.site
            && *site != learner.site
        {
            return Err(Error::FailedPrecondition {
                reason: "OTHER_SITE_LEARNER",
                message: format!(
                    "{staff_field}: {} works at {}; a {site} cohort takes {site} staff (enrol other sites' staff in a trust-wide cohort)",
                    learner.name(),
                    learner.site
                ),
            });
        }
        // One unfinished cohort of a course at a time.
        let elsewhere = store::elsewhere(
            &mut *tx,
            &learner.employee_number,
            &cohort.course_id,
            cohort.uid,
        )
        .await?;
        if let Some(other) = elsewhere {
            return Err(Error::FailedPrecondition {
                reason: "ALREADY_ON_COURSE",
                message: format!(
                    "{staff_field}: {} is already on {other}, an unfinished cohort of the same course",
                    learner.name()
                ),
            });
        }
        let enrolled = store::enrolled_count(&mut *tx, cohort.uid).await?;
        let place = if enrolled < i64::from(cohort.capacity) {
            "enrolled"
        } else {
            "waitlisted"
        };
        if !store::insert(&mut *tx, &cohort, &learner.employee_number, place).await? {
            return Err(Error::AlreadyExists {
                name: format!(
                    "{}/{COLLECTION}/{}",
                    cohort.name()?,
                    learner.employee_number
                ),
            });
        }
        let enrolment = store::read_one(&mut *tx, cohort.uid, &learner.employee_number).await?;
        let resp = pb::CreateEnrolmentResponse {
            enrolment: Some(enrolment),
        };
        Ok(resp)
    })
    .await
}

/// WithdrawEnrolment: the learner leaves, and any place freed goes to the waitlist.
pub(crate) async fn withdraw(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::WithdrawEnrolmentRequest,
) -> Result<pb::WithdrawEnrolmentResponse, Error> {
    let pb::WithdrawEnrolmentRequest { name } = req;
    let (owner, cohort_id, number) = parse_name("name", &name)?;
    owner.check_write(&ctx)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let cohort = cohorts::store::locate(&mut tx, &owner, &cohort_id, true)
        .await?
        .ok_or_else(|| Error::not_found(&name))?;
    match store::state_of(&mut tx, cohort.uid, &number)
        .await?
        .as_deref()
    {
        None => return Err(Error::not_found(&name)),
        Some("withdrawn") => {
            return Err(Error::FailedPrecondition {
                reason: "ALREADY_WITHDRAWN",
                message: format!("{name} was already withdrawn"),
            });
        }
        Some(_) => {}
    }
    store::withdraw(&mut tx, cohort.uid, &number).await?;
    let promoted = store::fill_places(&mut tx, cohort.uid).await?;
    let enrolment = store::read_one(&mut tx, cohort.uid, &number).await?;
    let promoted = match promoted.first() {
        Some(p) => Some(store::read_one(&mut tx, cohort.uid, p).await?),
        None => None,
    };
    tx.commit().await?;
    Ok(pb::WithdrawEnrolmentResponse {
        enrolment: Some(enrolment),
        promoted,
    })
}

/// ListEnrolments: a cohort's roster: a site's cohort whole (the caller holds its site, and
/// a learner who has since moved stays on it), a trust-wide one only the learners now at the
/// caller's sites.
pub(crate) async fn list(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::ListEnrolmentsRequest,
) -> Result<pb::ListEnrolmentsResponse, Error> {
    let pb::ListEnrolmentsRequest {
        parent,
        page_size,
        page_token,
    } = req;
    let page = Page::parse(page_size, &page_token, &parent)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let cohort = cohorts::resolve(&mut conn, &ctx, "parent", &parent, false, false).await?;
    let (enrolments, next_page_token) =
        store::list(&mut conn, &cohort, &page, ctx.sites.sql_filter()).await?;
    Ok(pb::ListEnrolmentsResponse {
        enrolments,
        next_page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrolment_names_nest_under_their_cohort() {
        let (owner, cohort, number) =
            parse_name("name", "trust/cohorts/spring-27/enrolments/12345678").unwrap();
        assert_eq!(
            (owner, cohort.as_str(), number.as_str()),
            (Owner::Trust, "spring-27", "12345678")
        );
        assert!(parse_name("name", "trust/cohorts/spring-27/enrolments/abc").is_err());
    }
}
