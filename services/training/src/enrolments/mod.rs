//! Enrolment (`{cohort}/enrolments/{employee_number}`): places up to the cohort's capacity,
//! then a waitlist promoted in order when a place frees. Every change locks the cohort's row
//! first, so concurrent enrolments never overfill it. The handlers and the rules of who may
//! join.

pub(crate) mod store;

use qi_platform::changes::{Batch, Kind};
use qi_platform::extract::{self, Order};
use qi_platform::names::{self, Owner};
use qi_platform::names::{ListParentScope as _, OwnerAccess as _};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::training as pb;
use sqlx::PgConnection;

use crate::cohorts::CohortRef;
use crate::{TrainingApi, cohorts, staff};

/// The collection id in enrolment names.
pub(crate) const COLLECTION: &str = "enrolments";

/// An enrolment's states, as a List's filter reads them.
const STATES: extract::States = extract::States {
    prefix: "ENROLMENT_STATE_",
    stored: &["enrolled", "waitlisted", "withdrawn"],
};

/// The sites whose callers read an enrolment in `cohort` of a learner now at
/// `learner_site`: the learner's (their training record; of a trust-wide cohort's roster,
/// a site caller sees only its own staff), and a site cohort's own (its roster is read
/// whole, a learner who has moved since included), first.
pub(crate) fn feed_sites(cohort: &CohortRef, learner_site: &str) -> Vec<String> {
    match cohort.site.as_deref() {
        Some(site) if site != learner_site => vec![site.to_owned(), learner_site.to_owned()],
        _ => vec![learner_site.to_owned()],
    }
}

/// Records a change of each enrolment of `located` (with its learner's current site) in
/// `cohort`, and returns them: one statement for all, but for a learner who has moved
/// since joining a site's cohort (seen from two sites), recorded alone.
async fn publish(
    conn: &mut PgConnection,
    cohort: &CohortRef,
    located: Vec<(String, pb::Enrolment)>,
    kind: Kind,
) -> Result<Vec<pb::Enrolment>, Error> {
    let mut batch = Batch::new();
    let mut enrolments = Vec::with_capacity(located.len());
    for (learner_site, enrolment) in located {
        let mut sites = feed_sites(cohort, &learner_site);
        if sites.len() == 1 {
            batch.push(enrolment.name.clone(), kind, sites.pop(), Some(&enrolment));
        } else {
            let name = &enrolment.name;
            crate::feed::record(conn, COLLECTION, name, kind, Some(sites), &enrolment).await?;
        }
        enrolments.push(enrolment);
    }
    batch.record(conn, COLLECTION).await?;
    Ok(enrolments)
}

/// Records a change of these learners' enrolments in `cohort`, each read as it now is (one
/// read, however many), and returns them by employee number.
pub(crate) async fn record_changes(
    conn: &mut PgConnection,
    cohort: &CohortRef,
    numbers: &[String],
    kind: Kind,
) -> Result<Vec<pb::Enrolment>, Error> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let located = store::read_located(conn, cohort.uid, numbers).await?;
    publish(conn, cohort, located, kind).await
}

/// Records the learners promoted from `cohort`'s waitlist into free places, and the rest
/// of the waitlist, each of whom moved up.
pub(crate) async fn record_promotions(
    conn: &mut PgConnection,
    cohort: &CohortRef,
    promoted: &[String],
) -> Result<Vec<pb::Enrolment>, Error> {
    if promoted.is_empty() {
        return Ok(Vec::new());
    }
    let enrolments = record_changes(conn, cohort, promoted, Kind::Updated).await?;
    record_waitlist_from(conn, cohort, 1).await?;
    Ok(enrolments)
}

/// Records the learners on `cohort`'s waitlist from `position` on (as it now is), whose
/// places in it moved when someone ahead left it.
async fn record_waitlist_from(
    conn: &mut PgConnection,
    cohort: &CohortRef,
    position: i32,
) -> Result<(), Error> {
    let mut moved = store::waitlist_located(conn, cohort.uid).await?;
    moved.retain(|(_, e)| e.waitlist_position >= position);
    publish(conn, cohort, moved, Kind::Updated).await?;
    Ok(())
}

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
        let number = std::slice::from_ref(&learner.employee_number);
        let enrolment = record_changes(tx, &cohort, number, Kind::Created)
            .await?
            .pop()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("the enrolment just made is missing")))?;
        // The cohort's counts moved with its roster.
        cohorts::record_change(tx, &cohort, Kind::Updated).await?;
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
    // Where they waited, if they did: everyone behind them moves up.
    let waited_at = match store::state_of(&mut tx, cohort.uid, &number)
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
        Some("waitlisted") => {
            let waiting = store::read_one(&mut tx, cohort.uid, &number).await?;
            Some(waiting.waitlist_position)
        }
        Some(_) => None,
    };
    store::withdraw(&mut tx, cohort.uid, &number).await?;
    let promoted = store::fill_places(&mut tx, cohort.uid).await?;
    let withdrawn = std::slice::from_ref(&number);
    let kind = Kind::StateChanged("withdraw");
    let enrolment = record_changes(&mut tx, &cohort, withdrawn, kind)
        .await?
        .pop()
        .ok_or_else(|| Error::not_found(&name))?;
    let first = promoted.first().map(|n| staff::name_of(n));
    let promoted = if promoted.is_empty() {
        if let Some(position) = waited_at {
            record_waitlist_from(&mut tx, &cohort, position).await?;
        }
        None
    } else {
        record_promotions(&mut tx, &cohort, &promoted)
            .await?
            .into_iter()
            .find(|e| Some(&e.staff) == first.as_ref())
    };
    // The cohort's counts moved with its roster.
    cohorts::record_change(&mut tx, &cohort, Kind::Updated).await?;
    tx.commit().await?;
    Ok(pb::WithdrawEnrolmentResponse {
        enrolment: Some(enrolment),
        promoted,
    })
}

/// ListEnrolments: a cohort's roster: a site's cohort whole (the caller holds its site, and
/// a learner who has since moved stays on it), a trust-wide one only the learners now at the
/// caller's sites. Under a `…/cohorts/-` parent, every such cohort's, oldest change first.
pub(crate) async fn list(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::ListEnrolmentsRequest,
) -> Result<pb::ListEnrolmentsResponse, Error> {
    let pb::ListEnrolmentsRequest {
        parent,
        page_size,
        page_token,
        filter,
        order_by,
    } = req;
    let mut v = Violations::new();
    let every = v.check(names::wildcard_parent(
        "parent",
        &parent,
        cohorts::COLLECTION,
    ));
    let terms = v.check(extract::read_terms(&filter, Some(STATES), false));
    let order = v.check(extract::order(&order_by));
    v.finish()?;
    let params = extract::token_params(parent.clone(), &filter, &order_by);
    let page = Page::parse(page_size, &page_token, &params)?;
    let wanted = store::Wanted {
        state: terms.state,
        updated: terms.updated,
        // Rosters have an order; every cohort's enrolments together have only change order.
        order: if every.is_some() {
            Order::UpdateTime
        } else {
            order
        },
    };
    let learner_sites = ctx.sites.sql_filter();
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let (enrolments, next_page_token) = match every {
        Some(owner) => {
            let scope = owner.scope(&ctx)?;
            let every = store::Cohorts::Every {
                trust: scope.trust,
                sites: scope.sites,
            };
            store::list(&mut conn, &every, learner_sites, &wanted, &page).await?
        }
        None => {
            let cohort = cohorts::resolve(&mut conn, &ctx, "parent", &parent, false, false).await?;
            let one = store::Cohorts::One(&cohort);
            store::list(&mut conn, &one, learner_sites, &wanted, &page).await?
        }
    };
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
