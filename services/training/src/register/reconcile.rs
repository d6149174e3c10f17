//! ReconcileTraining: the register beside what ESR says, person by person and course by
//! course. Two reads (the register of the staff in scope; ESR's records resolved to those
//! staff and to courses), then a merge here in key order, so the counts and each page come
//! from the same comparison. Nothing is stored: the caller sends ESR's records with every
//! page, and the page token carries a digest of them, so a token is refused with others.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use qi_platform::convert::{date, required_date};
use qi_platform::names::{ListParent, ListParentScope as _, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations};
use qi_proto::training as pb;

use super::import::Source;
use super::store;
use crate::TrainingApi;
use crate::staff::employee_number;

/// An ESR record that reads: its position, person, competence and date.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EsrRecord {
    pub(crate) index: i32,
    pub(crate) employee_number: String,
    pub(crate) competence: String,
    pub(crate) achieved_date: NaiveDate,
}

/// A register completion of a person in scope.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    pub(crate) employee_number: String,
    pub(crate) display_name: String,
    pub(crate) course_id: String,
    pub(crate) course_code: String,
    pub(crate) completion_date: NaiveDate,
    pub(crate) source: Source,
}

/// What the store made of one ESR record (in the records' order).
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    /// The person is at the sites compared and the competence is a course's.
    Course {
        display_name: String,
        course_id: String,
        course_code: String,
    },
    /// No course names the competence.
    OtherCompetence,
    /// Nobody at the sites compared has the employee number.
    NotAtSites,
}

/// Reads each ESR record alone: the readable ones, and the refusals.
fn read_records(
    records: Vec<pb::EsrCompetenceRecord>,
) -> (Vec<EsrRecord>, Vec<pb::RejectedEsrRecord>) {
    let mut ok = Vec::with_capacity(records.len());
    let mut rejected = Vec::new();
    for (i, r) in records.into_iter().enumerate() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        let pb::EsrCompetenceRecord {
            employee_number: emp,
            competence,
            achieved_date,
        } = r;
        let f = |name: &str| format!("esr_records[{index}].{name}");
        let mut v = Violations::new();
        let emp = v.check(employee_number(&f("employee_number"), emp.trim()));
        let competence = competence.trim().to_owned();
        if competence.is_empty() || competence.chars().count() > 200 {
            v.add(f("competence"), "is required: at most 200 characters");
        }
        let day = v.check(required_date(&f("achieved_date"), achieved_date.as_ref()).map(Some));
        match (v.finish(), day) {
            (Ok(()), Some(achieved_date)) => ok.push(EsrRecord {
                index,
                employee_number: emp,
                competence,
                achieved_date,
            }),
            (Err(Error::InvalidArgument { violations }), _) => {
                rejected.extend(violations.into_iter().map(|v| pb::RejectedEsrRecord {
                    index,
                    field: v.field,
                    reason: v.description,
                }));
            }
            (Ok(()) | Err(_), _) => rejected.push(pb::RejectedEsrRecord {
                index,
                field: f("achieved_date"),
                reason: "is required".into(),
            }),
        }
    }
    (ok, rejected)
}

/// One person and course, as the two sides have them.
#[derive(Debug, Default)]
struct Pair {
    display_name: String,
    course_code: String,
    register: Vec<(NaiveDate, Source)>,
    esr: Vec<NaiveDate>,
}

impl Pair {
    /// How the two compare, with the register's date and source and ESR's date to show.
    fn judge(
        &self,
    ) -> (
        pb::ReconciliationKind,
        Option<(NaiveDate, Source)>,
        Option<NaiveDate>,
    ) {
        let latest_here = self.register.iter().max_by_key(|(d, _)| *d).copied();
        let latest_esr = self.esr.iter().max().copied();
        match (latest_here, latest_esr) {
            (Some(_), None) => (pb::ReconciliationKind::RegisterOnly, latest_here, None),
            (None, _) => (pb::ReconciliationKind::EsrOnly, None, latest_esr),
            (Some(_), Some(_)) => {
                let shared = self
                    .register
                    .iter()
                    .filter(|(d, _)| self.esr.contains(d))
                    .max_by_key(|(d, _)| *d)
                    .copied();
                match shared {
                    Some((d, source)) => {
                        (pb::ReconciliationKind::InBoth, Some((d, source)), Some(d))
                    }
                    None => (
                        pb::ReconciliationKind::DateMismatch,
                        latest_here,
                        latest_esr,
                    ),
                }
            }
        }
    }
}

/// An entry with its key: (employee number, course id).
type Keyed = ((String, String), pb::ReconciliationEntry);

/// The comparison: counts, and every entry in (employee number, course id) order with its
/// key.
fn compare(
    held: Vec<Held>,
    esr: &[EsrRecord],
    resolved: &[Resolved],
) -> (pb::ReconciliationCounts, Vec<Keyed>) {
    let mut counts = pb::ReconciliationCounts::default();
    let mut pairs: BTreeMap<(String, String), Pair> = BTreeMap::new();
    for h in held {
        let p = pairs.entry((h.employee_number, h.course_id)).or_default();
        p.display_name = h.display_name;
        p.course_code = h.course_code;
        p.register.push((h.completion_date, h.source));
    }
    for (r, found) in esr.iter().zip(resolved) {
        match found {
            Resolved::Course {
                display_name,
                course_id,
                course_code,
            } => {
                let p = pairs
                    .entry((r.employee_number.clone(), course_id.clone()))
                    .or_default();
                p.display_name.clone_from(display_name);
                p.course_code.clone_from(course_code);
                p.esr.push(r.achieved_date);
            }
            Resolved::OtherCompetence => counts.other_competences += 1,
            Resolved::NotAtSites => counts.not_at_sites += 1,
        }
    }
    let entries = pairs
        .into_iter()
        .map(|(key, p)| {
            let (kind, here, esr) = p.judge();
            match kind {
                pb::ReconciliationKind::InBoth => counts.in_both += 1,
                pb::ReconciliationKind::RegisterOnly => counts.register_only += 1,
                pb::ReconciliationKind::EsrOnly => counts.esr_only += 1,
                pb::ReconciliationKind::DateMismatch => counts.date_mismatches += 1,
                pb::ReconciliationKind::Unspecified => {}
            }
            let entry = pb::ReconciliationEntry {
                staff: crate::staff::name_of(&key.0),
                staff_display_name: p.display_name,
                course: Owner::Trust.child(crate::courses::COLLECTION, &key.1),
                course_code: p.course_code,
                kind: kind as i32,
                register_date: here.map(|(d, _)| date(d)),
                esr_date: esr.map(date),
                register_source: here.map_or(pb::CompletionSource::Unspecified, |(_, s)| s.to_pb())
                    as i32,
            };
            (key, entry)
        })
        .collect();
    (counts, entries)
}

/// A digest of the records (FNV-1a), so a page token belongs to the records it was made for.
fn digest(records: &[pb::EsrCompetenceRecord]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for r in records {
        let d = r.achieved_date.unwrap_or_default();
        let text = format!(
            "{}\u{1f}{}\u{1f}{}-{}-{}\u{1e}",
            r.employee_number, r.competence, d.year, d.month, d.day
        );
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// ReconcileTraining: see the module's comment.
pub(crate) async fn reconcile(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::ReconcileTrainingRequest,
) -> Result<pb::ReconcileTrainingResponse, Error> {
    let pb::ReconcileTrainingRequest {
        parent,
        esr_records,
        kind,
        page_size,
        page_token,
    } = req;
    let mut v = Violations::new();
    let list_parent = v.check(ListParent::parse("parent", &parent).map(Some));
    let kind = v.check(
        pb::ReconciliationKind::try_from(kind)
            .map_err(|_| Error::invalid("kind", "is not a kind of reconciliation entry")),
    );
    v.finish()?;
    let list_parent = list_parent.ok_or_else(|| Error::invalid("parent", "is required"))?;
    let params = format!("{parent}|{kind:?}|{:x}", digest(&esr_records));
    let page = Page::parse(page_size, &page_token, &params)?;
    let scope = list_parent.scope(&ctx)?;
    if scope.trust {
        return Err(Error::invalid(
            "parent",
            "training is reconciled for the staff of sites: use `sites/{site}` or `sites/-`",
        ));
    }
    let (records, rejected) = read_records(esr_records);
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let held = store::held(&mut conn, scope.sites.as_deref()).await?;
    let resolved = store::resolve_esr(&mut conn, &records, scope.sites.as_deref()).await?;
    let (mut counts, entries) = compare(held, &records, &resolved);
    counts.rejected_records = rejected
        .iter()
        .map(|r| r.index)
        .collect::<std::collections::BTreeSet<_>>()
        .len() as i64;
    let after = match (page.after_key(0), page.after_key(1)) {
        (Some(e), Some(c)) => Some((e.to_owned(), c.to_owned())),
        _ => None,
    };
    let wanted: Vec<_> = entries
        .into_iter()
        .filter(|(key, e)| {
            after.as_ref().is_none_or(|a| key > a)
                && (kind == pb::ReconciliationKind::Unspecified || e.kind == kind as i32)
        })
        .take(page.size + 1)
        .collect();
    let (wanted, next_page_token) =
        page.finish(wanted, |(key, _)| vec![key.0.clone(), key.1.clone()]);
    Ok(pb::ReconcileTrainingResponse {
        counts: Some(counts),
        entries: wanted.into_iter().map(|(_, e)| e).collect(),
        next_page_token,
        rejected: if page_token.is_empty() {
            rejected
        } else {
            Vec::new()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn held(emp: &str, course: &str, on: &str, source: Source) -> Held {
        Held {
            employee_number: emp.into(),
            display_name: format!("P {emp}"),
            course_id: course.into(),
            course_code: course.to_uppercase(),
            completion_date: day(on),
            source,
        }
    }

    fn record(index: i32, emp: &str, on: &str) -> EsrRecord {
        EsrRecord {
            index,
            employee_number: emp.into(),
            competence: "x".into(),
            achieved_date: day(on),
        }
    }

    fn course(id: &str) -> Resolved {
        Resolved::Course {
            display_name: "P".into(),
            course_id: id.into(),
            course_code: id.to_uppercase(),
        }
    }

    #[test]
    fn each_person_and_course_is_in_both_on_one_side_or_at_odds() {
        let register = vec![
            held("10000001", "fund", "2021-03-09", Source::Course),
            held("10000001", "fund", "2019-05-01", Source::Historic),
            held("10000002", "fund", "2021-03-09", Source::Course),
            held("10000003", "prac", "2022-01-01", Source::Transfer),
        ];
        let esr = [
            record(0, "10000001", "2019-05-01"),
            record(1, "10000002", "2021-03-10"),
            record(2, "10000004", "2020-01-01"),
            record(3, "10000004", "2020-01-01"),
            record(4, "10000005", "2020-01-01"),
        ];
        let resolved = [
            course("fund"),
            course("fund"),
            course("prac"),
            Resolved::OtherCompetence,
            Resolved::NotAtSites,
        ];
        let (counts, entries) = compare(register, &esr, &resolved);
        assert_eq!(
            (
                counts.in_both,
                counts.register_only,
                counts.esr_only,
                counts.date_mismatches,
                counts.other_competences,
                counts.not_at_sites
            ),
            (1, 1, 1, 1, 1, 1)
        );
        let got: Vec<_> = entries
            .iter()
            .map(|(k, e)| {
                (
                    k.0.as_str(),
                    e.kind,
                    e.register_date,
                    e.esr_date,
                    e.register_source,
                )
            })
            .collect();
        use pb::ReconciliationKind::*;
        let d = |s| Some(date(day(s)));
        assert_eq!(
            got,
            [
                // The date they share, and the source of that completion.
                (
                    "10000001",
                    InBoth as i32,
                    d("2019-05-01"),
                    d("2019-05-01"),
                    pb::CompletionSource::HistoricRegister as i32
                ),
                (
                    "10000002",
                    DateMismatch as i32,
                    d("2021-03-09"),
                    d("2021-03-10"),
                    pb::CompletionSource::Course as i32
                ),
                (
                    "10000003",
                    RegisterOnly as i32,
                    d("2022-01-01"),
                    None,
                    pb::CompletionSource::InterAuthorityTransfer as i32
                ),
                (
                    "10000004",
                    EsrOnly as i32,
                    None,
                    d("2020-01-01"),
                    pb::CompletionSource::Unspecified as i32
                ),
            ]
        );
    }

    #[test]
    fn a_record_that_does_not_read_is_refused_by_position_and_field() {
        let ok = pb::EsrCompetenceRecord {
            employee_number: "10000001".into(),
            competence: "QSIR-FUND".into(),
            achieved_date: Some(date(day("2020-01-01"))),
        };
        let (read, rejected) = read_records(vec![
            ok.clone(),
            pb::EsrCompetenceRecord {
                employee_number: "x".into(),
                ..ok.clone()
            },
            pb::EsrCompetenceRecord {
                achieved_date: None,
                competence: String::new(),
                ..ok
            },
        ]);
        assert_eq!(read.len(), 1);
        let fields: Vec<_> = rejected.iter().map(|r| r.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "esr_records[1].employee_number",
                "esr_records[2].competence",
                "esr_records[2].achieved_date"
            ]
        );
    }
}
