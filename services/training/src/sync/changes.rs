//! What an HR sync publishes in the training feed (`WatchChanges`): every person it
//! created or changed, as stored after the merge, with their own change: `leave` for one who
//! became inactive (a FULL sync's absent among them), `rejoin` for one active again, `move`
//! for one whose site changed (and a HIDDEN change for the old site's callers), else
//! created or updated. People whose rows were unchanged publish nothing.

use qi_platform::Error;
use qi_platform::changes::{self, Batch, Kind};
use qi_proto::training as pb;
use sqlx::PgConnection;

use super::{ACTIVE, KnownPeople, person_key};
use crate::staff::store::{StaffRow, by_numbers};

/// People read back and recorded at a time: bounded memory, few round trips (the same
/// number as [`NEXT_COPIED`] fetches).
const CHUNK: usize = 20_000;

/// The people whose rows were copied (new, or changed), read [`CHUNK`] at a time.
const COPIED: &str =
    "DECLARE sync_copied NO SCROLL CURSOR FOR SELECT DISTINCT employee_number FROM sync_row";
const NEXT_COPIED: &str = "FETCH 20000 FROM sync_copied";

/// The collection of people in names (`staff/{employee_number}`).
const COLLECTION: &str = "staff";

/// Records the changes of the people copied into `sync_row` and of the `absent`, in the
/// sync's transaction after its merge. `known` and `sites` say where and whether each known
/// person was active before.
pub(super) async fn record(
    tx: &mut PgConnection,
    known: &KnownPeople,
    sites: &[&str],
    absent: &[String],
) -> Result<(), Error> {
    // The people copied, a chunk at a time through a cursor (bounded memory however big
    // the extract), then the absent. `sync_row` is the sync's temporary table, which the
    // macros cannot check.
    sqlx::query(COPIED).execute(&mut *tx).await?;
    let mut absent = absent.chunks(CHUNK);
    loop {
        let copied: Vec<String> = sqlx::query_scalar(NEXT_COPIED).fetch_all(&mut *tx).await?;
        let chunk = if copied.is_empty() {
            match absent.next() {
                Some(chunk) => chunk.to_vec(),
                None => break,
            }
        } else {
            copied
        };
        let rows = by_numbers(tx, &chunk).await?;
        let mut batch = Batch::new();
        let (mut moved, mut lost, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        for row in rows {
            let before = known.get(person_key(&row.employee_number)).map(|k| {
                (
                    sites.get(k.place as usize).copied().unwrap_or(""),
                    k.flags & ACTIVE != 0,
                )
            });
            let kind = classify(&row, before);
            if let Some((site, _)) = before
                && site != row.site
            {
                moved.push(row.name());
                lost.push(site.to_owned());
                kept.push(row.site.clone());
            }
            let (name, site) = (row.name(), row.site.clone());
            batch.push(name, kind, Some(site), Some(&pb::Staff::from(row)));
        }
        // The sync holds `staff` from before its first write (`store::lock`).
        batch.record_under_lock(tx, COLLECTION).await?;
        changes::record_hidden_many(tx, COLLECTION, &moved, &lost, &kept).await?;
        hide_enrolments(tx, &moved, &lost, &kept).await?;
    }
    Ok(())
}

/// The change of a person as stored now, given where and whether they were active before
/// (`None`: new).
fn classify(now: &StaffRow, before: Option<(&str, bool)>) -> Kind {
    match before {
        None => Kind::Created,
        Some((_, true)) if !now.active => Kind::StateChanged("leave"),
        Some((_, false)) if now.active => Kind::StateChanged("rejoin"),
        Some((site, _)) if site != now.site => Kind::StateChanged("move"),
        Some(_) => Kind::Updated,
    }
}

/// The enrolments of people who moved leave their old site's view too (an enrolment is read
/// by its learner's site, and by its cohort's site for a site cohort's roster), except those
/// in a cohort of the old site itself.
async fn hide_enrolments(
    tx: &mut PgConnection,
    people: &[String],
    lost: &[String],
    kept: &[String],
) -> Result<(), Error> {
    if people.is_empty() {
        return Ok(());
    }
    let numbers: Vec<&str> = people
        .iter()
        .map(|p| p.strip_prefix("staff/").unwrap_or(p))
        .collect();
    let rows = sqlx::query!(
        r#"SELECT CASE WHEN c.site IS NULL THEN 'trust/cohorts/' || c.id
                       ELSE 'sites/' || c.site || '/cohorts/' || c.id END
                  || '/enrolments/' || e.employee_number AS "name!",
                  e.employee_number, c.site
           FROM enrolment e JOIN cohort c ON c.uid = e.cohort_uid
           WHERE e.employee_number = ANY($1)"#,
        &numbers as &[&str],
    )
    .fetch_all(&mut *tx)
    .await?;
    let index: std::collections::HashMap<&str, usize> =
        numbers.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let (mut names, mut from, mut still) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        let Some(&i) = index.get(r.employee_number.as_str()) else {
            continue;
        };
        if r.site.as_deref() == Some(lost[i].as_str()) {
            continue;
        }
        names.push(r.name);
        from.push(lost[i].clone());
        still.push(match r.site {
            Some(cohort_site) => format!("{},{cohort_site}", kept[i]),
            None => kept[i].clone(),
        });
    }
    changes::record_hidden_many(tx, "enrolments", &names, &from, &still).await
}
