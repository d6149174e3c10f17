//! The trained-staff register: completions derived from attendance, the queries over it
//! (one person's record, the register by site/course/period, the training summary), and its
//! change history for HR's export to ESR. The handlers and the completion rule.
//!
//! Every change to a completion takes the next `register_change_seq` value while holding a
//! transaction-level advisory lock, so sequence order is commit order and an export that
//! resumes after a cursor never skips a change committed late.

mod filter;
pub(crate) mod import;
pub(crate) mod reconcile;
pub(crate) mod store;

use std::collections::HashSet;

use chrono::{Months, NaiveDate};
use qi_platform::changes::{Batch, Kind};
use qi_platform::convert::optional_date;
use qi_platform::extract;
use qi_platform::names::ListParent;
use qi_platform::names::ListParentScope as _;
use qi_platform::paging::Page;
use qi_platform::rpc::ResponseStream;
use qi_platform::{AccessContext, Error, Violations};
use qi_proto::training as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::cohorts::CohortRef;
use crate::{TrainingApi, courses, enrolments, staff};

/// The collection id in completion names.
pub(crate) const COLLECTION: &str = "completions";

/// Changes per message of the training-record export.
const EXPORT_PAGE: i64 = 1_000;

/// What a register means for its learners' completions: who now meets the course's rule
/// (with a new completion's id, its date and expiry), and who no longer does. Columns, as
/// the store binds them.
#[derive(Debug, Default)]
struct Outcome {
    ids: Vec<Uuid>,
    met: Vec<String>,
    days: Vec<NaiveDate>,
    expiries: Vec<Option<NaiveDate>>,
    unmet: Vec<String>,
}

impl Outcome {
    /// Judges each learner's attended session dates (in date order) against the rule: a
    /// course of `sessions`, `required` of them (0: all) to complete it, a completion dated
    /// by the qualifying session and lasting `validity` months (0: for ever).
    fn judge(
        (sessions, required, validity): (i32, i32, i32),
        attended: Vec<(String, Vec<NaiveDate>)>,
    ) -> Self {
        let needed = if required == 0 { sessions } else { required };
        let mut o = Outcome::default();
        for (number, dates) in attended {
            let day = usize::try_from(needed)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| dates.get(i).copied());
            match day {
                Some(day) => {
                    o.ids.push(Uuid::now_v7());
                    o.met.push(number);
                    o.days.push(day);
                    o.expiries.push(
                        (validity > 0)
                            .then(|| day.checked_add_months(Months::new(validity.unsigned_abs())))
                            .flatten(),
                    );
                }
                None => o.unmet.push(number),
            }
        }
        o
    }
}

/// Records, in one statement, the changes of `located` completions (each created when
/// `appeared` says so, else updated) and the deletion of `revoked` ones, each seen by its
/// learner's current site: the register, like a person's record, is read by the site the
/// learner works at now.
async fn record_changes(
    conn: &mut PgConnection,
    located: &[store::Located],
    appeared: impl Fn(&Uuid) -> bool,
    revoked: &[store::Revoked],
) -> Result<(), Error> {
    let mut batch = Batch::new();
    for l in located {
        let kind = if appeared(&l.id) {
            Kind::Created
        } else {
            Kind::Updated
        };
        let c = &l.completion;
        batch.push(c.name.clone(), kind, Some(l.site.clone()), Some(c));
    }
    for r in revoked {
        let name = format!(
            "{}/{COLLECTION}/{}",
            staff::name_of(&r.employee_number),
            r.id
        );
        batch.push(
            name,
            Kind::Deleted,
            Some(r.site.clone()),
            None::<&pb::Completion>,
        );
    }
    batch.record(conn, COLLECTION).await
}

/// Derives the completions of these learners in a cohort from their attendance: achieved
/// when the course's rule is met (dated by the qualifying session), revoked when a corrected
/// register no longer meets it, each change recorded in the feed (a revoked completion
/// leaves the register: deleted). Returns the completions newly achieved.
pub(crate) async fn derive(
    conn: &mut PgConnection,
    cohort: &CohortRef,
    numbers: &[String],
) -> Result<Vec<pb::Completion>, Error> {
    let rule = courses::store::completion_rule(conn, &cohort.course_id).await?;
    let attended = store::attended(conn, cohort.uid, numbers).await?;
    let outcome = Outcome::judge(rule, attended);
    // Every register writer waits for this lock: two statements under it, however many
    // learners the register holds.
    store::lock(conn).await?;
    let achieved = if outcome.met.is_empty() {
        Vec::new()
    } else {
        store::achieve(conn, &cohort.course_id, cohort.uid, &outcome).await?
    };
    let revoked = if outcome.unmet.is_empty() {
        Vec::new()
    } else {
        store::revoke(conn, cohort.uid, &outcome.unmet).await?
    };
    let located = if achieved.is_empty() {
        Vec::new()
    } else {
        let ids: Vec<Uuid> = achieved.iter().map(|a| a.id).collect();
        store::by_ids(conn, &ids).await?
    };
    let appeared: HashSet<Uuid> = achieved
        .iter()
        .filter(|a| a.appeared)
        .map(|a| a.id)
        .collect();
    record_changes(conn, &located, |id| appeared.contains(id), &revoked).await?;
    Ok(located.into_iter().map(|l| l.completion).collect())
}

/// GetTrainingRecord: one person, their enrolments and their completions.
pub(crate) async fn get_record(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::GetTrainingRecordRequest,
) -> Result<pb::GetTrainingRecordResponse, Error> {
    let pb::GetTrainingRecordRequest { staff: name } = req;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let person = staff::read(&mut conn, &ctx, "staff", &name).await?;
    let enrolments = enrolments::store::of_staff(&mut conn, &person.employee_number).await?;
    let completions = store::of_staff(&mut conn, &person.employee_number).await?;
    Ok(pb::GetTrainingRecordResponse {
        staff: Some(person.into()),
        enrolments,
        completions,
    })
}

/// ListCompletions: the register of the learners' current sites, or one person's, by
/// course and period.
pub(crate) async fn list(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::ListCompletionsRequest,
) -> Result<pb::ListCompletionsResponse, Error> {
    let params = format!(
        "{}|{}|{:?}|{:?}|{}",
        req.parent, req.course, req.completed_on_or_after, req.completed_before, req.filter
    );
    let pb::ListCompletionsRequest {
        parent,
        course,
        completed_on_or_after,
        completed_before,
        page_size,
        page_token,
        filter,
        order_by,
    } = req;
    let mut v = Violations::new();
    // A person's name (`staff/…`, or the v1 `sites/{site}/staff/…`) lists their completions.
    let person_parent = parent.starts_with("staff/") || parent.contains("/staff/");
    let list_parent = if person_parent {
        v.check(staff::parse_name("parent", &parent).map(|_| None))
    } else {
        v.check(ListParent::parse("parent", &parent).map(Some))
    };
    let mut f = filter::Filter::default();
    if !course.is_empty() {
        f.course.is = Some(v.check(courses::parse_ref("course", &course)));
    }
    f.completed.from = v.check(optional_date(
        "completed_on_or_after",
        completed_on_or_after.as_ref(),
    ));
    f.completed.before = v.check(optional_date("completed_before", completed_before.as_ref()));
    let (terms, updated) = v.check(extract::read_filter(&filter));
    let filter = v.check(filter::read_terms(f, terms));
    let order = v.check(extract::order(&order_by));
    v.finish()?;
    // The filter is in `params` already.
    let params = extract::token_params(params, "", &order_by);
    let page = Page::parse(page_size, &page_token, &params)?;
    let wanted = store::Wanted {
        filter: &filter,
        updated,
        order,
    };
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let Some(list_parent) = list_parent else {
        // Read as GetStaff reads the person: the same refusals, then all their completions.
        let person = staff::read(&mut conn, &ctx, "parent", &parent).await?;
        let (completions, next_page_token) = store::list(
            &mut conn,
            None,
            Some(&person.employee_number),
            &wanted,
            &page,
        )
        .await?;
        return Ok(pb::ListCompletionsResponse {
            completions,
            next_page_token,
        });
    };
    let scope = list_parent.scope(&ctx)?;
    if scope.trust {
        return Err(Error::invalid(
            "parent",
            "the register is kept by the learners' sites: use `sites/{site}` or `sites/-`",
        ));
    }
    let sites = filter.sites(scope.sites, &api.sites);
    let (completions, next_page_token) =
        store::list(&mut conn, sites, None, &wanted, &page).await?;
    Ok(pb::ListCompletionsResponse {
        completions,
        next_page_token,
    })
}

/// GetTrainingSummary: completions per course, site and period for the caller's sites, and
/// the breakdown with headcount and coverage.
pub(crate) async fn summarize(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::GetTrainingSummaryRequest,
) -> Result<pb::GetTrainingSummaryResponse, Error> {
    let pb::GetTrainingSummaryRequest {
        parent,
        period,
        start_date,
        end_date,
        group_by,
        filter,
    } = req;
    let mut v = Violations::new();
    let list_parent = v.check(ListParent::parse("parent", &parent).map(Some));
    let period = v
        .check(pb::SummaryPeriod::try_from(period).map_err(|_| {
            Error::invalid("period", "choose YEAR, QUARTER, MONTH or FINANCIAL_YEAR")
        }));
    let mut f = filter::Filter::default();
    f.completed.from = v.check(optional_date("start_date", start_date.as_ref()));
    f.completed.before = v.check(optional_date("end_date", end_date.as_ref()));
    let by = v.check(dimensions(&group_by));
    let filter = v.check(filter::parse(f, &filter));
    v.finish()?;
    let list_parent = list_parent.ok_or_else(|| Error::invalid("parent", "is required"))?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let scope = list_parent.scope(&ctx)?;
    if scope.trust {
        return Err(Error::invalid("parent", "use `sites/{site}` or `sites/-`"));
    }
    let sites = filter.sites(scope.sites, &api.sites);
    store::summary(&mut conn, sites, period, &filter, by).await
}

/// Reads a summary's `group_by`: each dimension at most once.
fn dimensions(group_by: &[i32]) -> Result<store::Dimensions, Error> {
    use pb::SummaryDimension as D;
    let mut by = store::Dimensions::default();
    for (i, &d) in group_by.iter().enumerate() {
        let slot = match D::try_from(d) {
            Ok(D::Course) => &mut by.course,
            Ok(D::Site) => &mut by.site,
            Ok(D::Period) => &mut by.period,
            Ok(D::StaffGroup) => &mut by.staff_group,
            Ok(D::PayBand) => &mut by.pay_band,
            Ok(D::Department) => &mut by.department,
            Ok(D::Ward) => &mut by.ward,
            Ok(D::Unspecified) | Err(_) => {
                return Err(Error::invalid(
                    format!("group_by[{i}]"),
                    "choose COURSE, SITE, PERIOD, STAFF_GROUP, PAY_BAND, DEPARTMENT or WARD",
                ));
            }
        };
        if std::mem::replace(slot, true) {
            return Err(Error::invalid(
                format!("group_by[{i}]"),
                "names a dimension already given",
            ));
        }
    }
    Ok(by)
}

/// Reads an export cursor (the register position, as text; empty is the start).
fn parse_cursor(cursor: &str) -> Result<i64, Error> {
    if cursor.is_empty() {
        return Ok(0);
    }
    cursor
        .parse::<i64>()
        .ok()
        .filter(|c| *c >= 0)
        .ok_or_else(|| Error::invalid("since_cursor", "not a cursor this stream returned"))
}

/// StreamTrainingRecords: the register's changes after a cursor, oldest first, in pages
/// each read when the client is ready for it.
pub(crate) async fn stream(
    api: &TrainingApi,
    _ctx: AccessContext,
    req: pb::StreamTrainingRecordsRequest,
) -> Result<ResponseStream<pb::StreamTrainingRecordsResponse>, Error> {
    let pb::StreamTrainingRecordsRequest { since_cursor } = req;
    let mut cursor = parse_cursor(&since_cursor)?;
    let pool = api.pool.clone();
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        loop {
            let page = match qi_platform::db::begin(&pool).await {
                Ok(mut conn) => store::changes_since(&mut conn, cursor, EXPORT_PAGE).await,
                Err(e) => Err(e),
            };
            let done = match page {
                Ok(changes) => {
                    let Some(last) = changes.last() else { break };
                    cursor = last.cursor.parse().unwrap_or(i64::MAX);
                    let short = (changes.len() as i64) < EXPORT_PAGE;
                    if tx
                        .send(Ok(pb::StreamTrainingRecordsResponse { changes }))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    short
                }
                Err(e) => {
                    let _ = tx.send(Err(tonic::Status::from(e))).await;
                    true
                }
            };
            if done {
                break;
            }
        }
    });
    Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 3, d).unwrap()
    }

    #[test]
    fn the_qualifying_session_dates_a_completion_and_its_expiry() {
        let attended = vec![
            ("10000001".to_owned(), vec![day(1), day(8), day(15)]),
            ("10000002".to_owned(), vec![day(1)]),
        ];
        let o = Outcome::judge((5, 2, 12), attended);
        assert_eq!(o.met, ["10000001"]);
        assert_eq!(o.days, [day(8)]);
        assert_eq!(o.expiries, [NaiveDate::from_ymd_opt(2028, 3, 8)]);
        assert_eq!(o.unmet, ["10000002"]);
    }

    #[test]
    fn with_no_sessions_required_every_one_is() {
        let o = Outcome::judge((2, 0, 0), vec![("10000001".to_owned(), vec![day(1)])]);
        assert_eq!(o.unmet, ["10000001"]);
        let o = Outcome::judge(
            (2, 0, 0),
            vec![("10000001".to_owned(), vec![day(1), day(8)])],
        );
        assert_eq!(
            (o.days.as_slice(), o.expiries.as_slice()),
            ([day(8)].as_slice(), [None].as_slice())
        );
    }
}
