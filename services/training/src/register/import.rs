//! ImportCompletions: completions achieved elsewhere (the historic register from before the
//! system, competences ESR holds, training at another trust brought by ESR's Inter Authority
//! Transfer) put into the register beside those earned here, so everything that counts the
//! register counts them.
//!
//! Each row is checked alone, first here (its shape) and then in one set-based statement
//! (is the person at one of the caller's sites, is there such a course, has the person
//! completed it here already); the rows that pass are upserted in one more statement, keyed
//! by person, course and date, so a re-import adds nothing. All of it is one transaction
//! under the register writers' lock: a call applies its good rows whole, or nothing.

use std::collections::HashMap;

use chrono::{Months, NaiveDate};
use qi_platform::changes::{Kind, Many};
use qi_platform::convert::{optional_date, required_date};
use qi_platform::names::{ListParent, ListParentScope as _, Owner, OwnerAccess as _};
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::training as pb;
use uuid::Uuid;

use super::store;
use crate::TrainingApi;
use crate::staff::employee_number;

/// The most rows of one call, as the contract bounds them.
pub(crate) const MAX_ROWS: usize = 5_000;

/// The most characters of a reference or an organisation.
const MAX_TEXT: usize = 200;

/// Where an imported completion comes from, as stored in `completion.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Earned here, in a cohort (never imported).
    Course,
    /// The trust's register from before the system.
    Historic,
    /// A competence ESR holds.
    Esr,
    /// Another trust's, by Inter Authority Transfer.
    Transfer,
}

impl Source {
    /// As stored.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Course => "course",
            Source::Historic => "historic",
            Source::Esr => "esr",
            Source::Transfer => "transfer",
        }
    }

    /// Reads a stored source (an unknown one reads as earned here: the column's check
    /// allows none).
    pub(crate) fn from_column(s: &str) -> Source {
        match s {
            "historic" => Source::Historic,
            "esr" => Source::Esr,
            "transfer" => Source::Transfer,
            _ => Source::Course,
        }
    }

    /// The contract's enum.
    pub(crate) fn to_pb(self) -> pb::CompletionSource {
        match self {
            Source::Course => pb::CompletionSource::Course,
            Source::Historic => pb::CompletionSource::HistoricRegister,
            Source::Esr => pb::CompletionSource::EsrCompetence,
            Source::Transfer => pb::CompletionSource::InterAuthorityTransfer,
        }
    }

    /// An import's source: one of the three from elsewhere.
    fn imported(field: &str, value: i32) -> Result<Source, Error> {
        match pb::CompletionSource::try_from(value) {
            Ok(pb::CompletionSource::HistoricRegister) => Ok(Source::Historic),
            Ok(pb::CompletionSource::EsrCompetence) => Ok(Source::Esr),
            Ok(pb::CompletionSource::InterAuthorityTransfer) => Ok(Source::Transfer),
            Ok(pb::CompletionSource::Course) => Err(Error::invalid(
                field,
                "a completion earned here comes from its cohort's register, not an import: \
                 choose HISTORIC_REGISTER, ESR_COMPETENCE or INTER_AUTHORITY_TRANSFER",
            )),
            Ok(pb::CompletionSource::Unspecified) | Err(_) => Err(Error::invalid(
                field,
                "is required: HISTORIC_REGISTER, ESR_COMPETENCE or INTER_AUTHORITY_TRANSFER",
            )),
        }
    }

    /// What the export to ESR names as an imported completion's source.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Source::Course => "course",
            Source::Historic => "historic register",
            Source::Esr => "ESR competence",
            Source::Transfer => "inter-authority transfer",
        }
    }
}

/// A row whose shape is good, with its position in the request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) index: i32,
    pub(crate) employee_number: String,
    /// A course id (from a name) or a course code, as the store resolves it.
    pub(crate) course: String,
    pub(crate) completion_date: NaiveDate,
    pub(crate) source: Source,
    pub(crate) source_reference: String,
    pub(crate) previous_organisation: String,
    pub(crate) expiry_date: Option<NaiveDate>,
}

/// One line of text, optional: trimmed, at most [`MAX_TEXT`] characters, no control
/// characters (it is written to CSV files and ESR uploads).
fn one_line(field: &str, v: &str) -> Result<String, Error> {
    let v = v.trim();
    if v.chars().count() > MAX_TEXT {
        return Err(Error::invalid(
            field,
            format!("is longer than {MAX_TEXT} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "must be one line, without control characters",
        ));
    }
    Ok(v.to_owned())
}

/// A course given by name (`trust/courses/{id}`: the id) or by code (`QSIR-PRAC`).
fn course_ref(field: &str, v: &str) -> Result<String, Error> {
    let v = v.trim();
    if v.contains('/') {
        return crate::courses::parse_ref(field, v);
    }
    let ok = (1..=30).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(Error::invalid(
            field,
            "is required: the course's name, `trust/courses/{course}`, or its code, e.g. QSIR-PRAC",
        ))
    }
}

/// Checks one row's shape; every bad field is named under `completions[{index}]`.
fn check(index: i32, c: pb::ImportedCompletion, today: NaiveDate) -> Result<Row, Error> {
    let pb::ImportedCompletion {
        employee_number: emp,
        course,
        completion_date,
        source,
        source_reference,
        previous_organisation,
        expiry_date,
    } = c;
    let f = |name: &str| format!("completions[{index}].{name}");
    let mut v = Violations::new();
    let emp = v.check(employee_number(&f("employee_number"), emp.trim()));
    let course = v.check(course_ref(&f("course"), &course));
    let date = v.check(
        required_date(&f("completion_date"), completion_date.as_ref()).and_then(|d| {
            if d > today {
                Err(Error::invalid(
                    f("completion_date"),
                    format!("{d} is in the future"),
                ))
            } else {
                Ok(Some(d))
            }
        }),
    );
    let source = v.check(Source::imported(&f("source"), source).map(Some));
    let source_reference = v.check(one_line(&f("source_reference"), &source_reference));
    let previous_organisation = v.check(one_line(
        &f("previous_organisation"),
        &previous_organisation,
    ));
    if source == Some(Source::Transfer) && previous_organisation.is_empty() {
        v.add(
            f("previous_organisation"),
            "is required for an Inter Authority Transfer: the trust it was achieved at",
        );
    }
    let expiry = v.check(optional_date(&f("expiry_date"), expiry_date.as_ref()));
    if let (Some(d), Some(e)) = (date, expiry)
        && e < d
    {
        v.add(
            f("expiry_date"),
            format!("{e} is before the completion date {d}"),
        );
    }
    v.finish()?;
    let (Some(completion_date), Some(source)) = (date, source) else {
        return Err(Error::invalid(f("completion_date"), "is required"));
    };
    Ok(Row {
        index,
        employee_number: emp,
        course,
        completion_date,
        source,
        source_reference,
        previous_organisation,
        expiry_date: expiry,
    })
}

/// The rows checked one by one: the good ones, and the refusals by position and field.
fn check_rows(
    rows: Vec<pb::ImportedCompletion>,
    today: NaiveDate,
) -> (Vec<Row>, Vec<pb::RejectedCompletion>) {
    let mut valid = Vec::with_capacity(rows.len());
    let mut rejected = Vec::new();
    for (i, c) in rows.into_iter().enumerate() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        let sent = qi_platform::names::clip(&c.employee_number);
        match check(index, c, today) {
            Ok(row) => valid.push(row),
            Err(e) => rejected.extend(refusals(index, &sent, e)),
        }
    }
    (valid, rejected)
}

/// An error as refusals of row `index`: one per field at fault.
fn refusals(index: i32, employee_number: &str, e: Error) -> Vec<pb::RejectedCompletion> {
    let refusal = |field: String, reason: String| pb::RejectedCompletion {
        index,
        employee_number: employee_number.to_owned(),
        field,
        reason,
    };
    if let Error::InvalidArgument { violations } = e {
        violations
            .into_iter()
            .map(|v| refusal(v.field, v.description))
            .collect()
    } else {
        vec![refusal(format!("completions[{index}]"), e.to_string())]
    }
}

/// What the store found of a checked row.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) index: i32,
    /// Whether the person is at one of the sites the import covers.
    pub(crate) in_scope: bool,
    /// Their site, when in scope (whose callers read their register).
    pub(crate) site: String,
    /// The course's id and validity in months, if there is such a course.
    pub(crate) course: Option<(String, i32)>,
    /// Whether the person has completed that course here (not revoked).
    pub(crate) earned_here: bool,
}

/// An imported completion as stored: what a re-import compares.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Existing {
    pub(crate) id: Uuid,
    pub(crate) expiry_date: Option<NaiveDate>,
    pub(crate) source: String,
    pub(crate) source_reference: String,
    pub(crate) previous_organisation: String,
    pub(crate) revoked: bool,
}

/// A row to upsert, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Upsert<'a> {
    pub(crate) row: &'a Row,
    /// The learner's site now.
    pub(crate) site: String,
    pub(crate) course_id: String,
    pub(crate) expiry_date: Option<NaiveDate>,
    /// The completion held for the same person, course and date, if any.
    pub(crate) held: Option<Existing>,
}

impl Upsert<'_> {
    /// Whether writing the row would change what is held (or add it).
    pub(crate) fn changes(&self) -> bool {
        self.held.as_ref().is_none_or(|h| {
            (
                h.expiry_date,
                h.source.as_str(),
                h.source_reference.as_str(),
                h.previous_organisation.as_str(),
                h.revoked,
            ) != (
                self.expiry_date,
                self.row.source.as_str(),
                self.row.source_reference.as_str(),
                self.row.previous_organisation.as_str(),
                false,
            )
        })
    }
}

/// What happens to each checked row, from what the store found: the rows to upsert, how
/// many are kept out because earned here, and the refusals.
fn resolve<'a>(
    rows: &'a [Row],
    found: &[Found],
) -> (Vec<Upsert<'a>>, i32, Vec<pb::RejectedCompletion>) {
    let by_index: HashMap<i32, &Found> = found.iter().map(|f| (f.index, f)).collect();
    let mut upserts = Vec::with_capacity(rows.len());
    let mut kept = 0;
    let mut rejected = Vec::new();
    // (person, course id, date) → the first row with it.
    let mut seen: HashMap<(&str, String, NaiveDate), i32> = HashMap::new();
    for row in rows {
        let refuse = |field: &str, reason: String| pb::RejectedCompletion {
            index: row.index,
            employee_number: row.employee_number.clone(),
            field: format!("completions[{}].{field}", row.index),
            reason,
        };
        let Some(f) = by_index.get(&row.index) else {
            continue;
        };
        if !f.in_scope {
            // The same words whether the person is elsewhere or nowhere: nothing leaks.
            rejected.push(refuse(
                "employee_number",
                format!(
                    "no staff member {} at the sites this import covers",
                    row.employee_number
                ),
            ));
            continue;
        }
        let Some((course_id, validity)) = &f.course else {
            rejected.push(refuse(
                "course",
                format!("there is no course {}", row.course),
            ));
            continue;
        };
        if f.earned_here {
            kept += 1;
            continue;
        }
        let key = (
            row.employee_number.as_str(),
            course_id.clone(),
            row.completion_date,
        );
        if let Some(first) = seen.get(&key) {
            rejected.push(refuse(
                "completion_date",
                format!("duplicates row {first}: the same person, course and date"),
            ));
            continue;
        }
        seen.insert(key, row.index);
        let expiry_date = row.expiry_date.or_else(|| {
            (*validity > 0)
                .then(|| {
                    row.completion_date
                        .checked_add_months(Months::new(validity.unsigned_abs()))
                })
                .flatten()
        });
        upserts.push(Upsert {
            row,
            site: f.site.clone(),
            course_id: course_id.clone(),
            expiry_date,
            held: None,
        });
    }
    (upserts, kept, rejected)
}

/// ImportCompletions: see the module's comment.
pub(crate) async fn import(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::ImportCompletionsRequest,
) -> Result<pb::ImportCompletionsResponse, Error> {
    let pb::ImportCompletionsRequest {
        parent,
        completions,
        request_id,
    } = req.clone();
    let mut v = Violations::new();
    let list_parent = v.check(ListParent::parse("parent", &parent).map(Some));
    v.check(idempotency::validate_request_id(&request_id));
    if completions.is_empty() {
        v.add("completions", "is required: send 1 to 5,000 completions");
    }
    v.finish()?;
    let list_parent = list_parent.ok_or_else(|| Error::invalid("parent", "is required"))?;
    if let ListParent::Owner(owner @ Owner::Site(_)) = &list_parent {
        owner.check_create(&ctx, &api.sites)?;
    }
    let scope = list_parent.scope(&ctx)?;
    if scope.trust {
        return Err(Error::invalid(
            "parent",
            "completions are imported for the staff of sites: use `sites/{site}` or `sites/-`",
        ));
    }
    debug_assert!(completions.len() <= MAX_ROWS, "bounded by the contract");
    let received = i32::try_from(completions.len()).unwrap_or(i32::MAX);
    let (rows, mut rejected) = check_rows(completions, qi_platform::calendar::today());
    let tx = qi_platform::db::begin(&api.pool).await?;
    idempotency::once(tx, &ctx, &request_id, &req, async |tx| {
        // As every register writer: history positions in commit order.
        store::lock(tx).await?;
        let found = store::import_lookup(tx, &rows, scope.sites.as_deref()).await?;
        let (mut upserts, kept_earned_here, refused) = resolve(&rows, &found);
        let numbers: Vec<&str> = upserts
            .iter()
            .map(|u| u.row.employee_number.as_str())
            .collect();
        let mut held = store::import_held(tx, &numbers).await?;
        for u in &mut upserts {
            let key = (
                u.row.employee_number.clone(),
                u.course_id.clone(),
                u.row.completion_date,
            );
            u.held = held.remove(&key);
        }
        rejected.extend(refused);
        rejected.sort_by_key(|r| r.index);
        // Under the register writers' lock what was found held stays so: new rows are
        // inserted plainly, changed ones updated by id, the rest left alone.
        let (new, known): (Vec<_>, Vec<_>) = upserts.iter().partition(|u| u.held.is_none());
        let changed: Vec<_> = known.into_iter().filter(|u| u.changes()).collect();
        let inserted = store::import_insert(tx, &new, &ctx.subject).await?;
        let updated = store::import_update(tx, &changed).await?;
        // The feed lists what was written, each at the learner's site, and renders it when
        // it delivers it (an import is up to 5,000 rows; a call after call of them, the
        // historic register): new ones, and those restored after a revocation, are created;
        // the rest updated.
        let mut many = Many::new();
        let name = |u: &Upsert<'_>, id: &Uuid| {
            format!(
                "{}/{}/{id}",
                crate::staff::name_of(&u.row.employee_number),
                super::COLLECTION
            )
        };
        for u in &changed {
            if let Some(held) = &u.held {
                let kind = if held.revoked {
                    Kind::Created
                } else {
                    Kind::Updated
                };
                many.push(name(u, &held.id), kind, Some(u.site.clone()));
            }
        }
        for (u, id) in new.iter().zip(&inserted) {
            many.push(name(u, id), Kind::Created, Some(u.site.clone()));
        }
        many.record(tx, super::COLLECTION).await?;
        let inserted = inserted.len();
        let unchanged = upserts.len() - inserted - updated;
        let n = |x: usize| i32::try_from(x).unwrap_or(i32::MAX);
        Ok(pb::ImportCompletionsResponse {
            received,
            inserted: n(inserted),
            updated: n(updated),
            unchanged: n(unchanged),
            kept_earned_here,
            rejected: std::mem::take(&mut rejected),
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use qi_platform::convert::date;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn row(
        emp: &str,
        course: &str,
        on: &str,
        source: pb::CompletionSource,
    ) -> pb::ImportedCompletion {
        pb::ImportedCompletion {
            employee_number: emp.into(),
            course: course.into(),
            completion_date: Some(date(day(on))),
            source: source as i32,
            ..Default::default()
        }
    }

    #[test]
    fn each_bad_row_is_refused_alone_naming_its_fields() {
        use pb::CompletionSource::*;
        let mut transfer = row(
            "10000004",
            "QSIR-PRAC",
            "2020-06-01",
            InterAuthorityTransfer,
        );
        transfer.expiry_date = Some(date(day("2020-01-01")));
        let (valid, rejected) = check_rows(
            vec![
                row("10000001", "QSIR-FUND", "2019-05-01", HistoricRegister),
                row("abc", "QSIR-FUND", "2019-05-01", HistoricRegister),
                row(
                    "10000003",
                    "trust/courses/qsir-prac",
                    "2999-01-01",
                    EsrCompetence,
                ),
                transfer,
                row("10000005", "QSIR FUND", "2019-05-01", Course),
            ],
            day("2026-12-07"),
        );
        assert_eq!(valid.len(), 1);
        assert_eq!(valid[0].course, "QSIR-FUND");
        let fields: Vec<(i32, &str)> = rejected
            .iter()
            .map(|r| (r.index, r.field.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                (1, "completions[1].employee_number"),
                (2, "completions[2].completion_date"),
                (3, "completions[3].previous_organisation"),
                (3, "completions[3].expiry_date"),
                (4, "completions[4].course"),
                (4, "completions[4].source"),
            ]
        );
        assert_eq!(rejected[0].employee_number, "abc");
    }

    #[test]
    fn a_row_is_refused_out_of_scope_without_course_or_twice_and_kept_out_when_earned_here() {
        use pb::CompletionSource::*;
        let (rows, none) = check_rows(
            vec![
                row("10000001", "QSIR-FUND", "2019-05-01", HistoricRegister),
                row("10000002", "QSIR-FUND", "2019-05-01", HistoricRegister),
                row("10000001", "NOPE", "2019-05-01", HistoricRegister),
                row("10000003", "QSIR-PRAC", "2019-05-01", EsrCompetence),
                row(
                    "10000001",
                    "trust/courses/qsir-fund",
                    "2019-05-01",
                    EsrCompetence,
                ),
            ],
            day("2026-12-07"),
        );
        assert!(none.is_empty());
        let found = |index, in_scope, course: Option<(&str, i32)>, earned_here| Found {
            index,
            in_scope,
            site: "BAS".into(),
            course: course.map(|(c, v)| (c.to_owned(), v)),
            earned_here,
        };
        let (upserts, kept, rejected) = resolve(
            &rows,
            &[
                found(0, true, Some(("qsir-fund", 24)), false),
                found(1, false, Some(("qsir-fund", 24)), false),
                found(2, true, None, false),
                found(3, true, Some(("qsir-prac", 0)), true),
                found(4, true, Some(("qsir-fund", 24)), false),
            ],
        );
        assert_eq!(upserts.len(), 1);
        assert_eq!(upserts[0].expiry_date, Some(day("2021-05-01")));
        assert_eq!(kept, 1);
        let refused: Vec<(i32, &str)> = rejected
            .iter()
            .map(|r| (r.index, r.field.as_str()))
            .collect();
        assert_eq!(
            refused,
            [
                (1, "completions[1].employee_number"),
                (2, "completions[2].course"),
                (4, "completions[4].completion_date"),
            ]
        );
        assert!(rejected[2].reason.contains("duplicates row 0"));
    }
}
