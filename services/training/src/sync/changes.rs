//! What an HR sync publishes in the training feed (`WatchChanges`): every person it
//! created or changed, as stored after the merge, with their own change: `leave` for one who
//! became inactive (a FULL sync's absent among them), `rejoin` for one active again, `move`
//! for one whose site changed (and a HIDDEN change for the old site's callers), else
//! created or updated. People whose rows were unchanged publish nothing.

use qi_platform::Error;
use qi_platform::changes::{self, Kind, Many};
use sqlx::PgConnection;

/// People read and recorded at a time: bounded memory, few round trips.
const CHUNK: &str = "FETCH 20000 FROM sync_changes";

/// The people the merge changed, with their changes: those it updated or deactivated as
/// it noted them in `sync_changed`, then those it inserted, every new row of `sync_row`
/// (the sync's temporary tables, which the macros cannot check).
const CHANGED: &str = "DECLARE sync_changes NO SCROLL CURSOR FOR
     SELECT employee_number, site, kind, verb, old_site FROM sync_changed
     UNION ALL
     SELECT employee_number, placed_site, 'created', '', NULL FROM sync_row WHERE is_new";

/// The collection of people in names (`staff/{employee_number}`).
const COLLECTION: &str = "staff";

/// A person the merge changed, and how.
#[derive(sqlx::FromRow)]
struct Changed {
    employee_number: String,
    site: String,
    kind: String,
    verb: String,
    /// Where they were before, when they were stored.
    old_site: Option<String>,
}

/// Records the changes of the people the sync's merge changed, in its transaction, as
/// [`Many`] changes: the feed renders each person when it delivers them (the training
/// feed's renderer). A person who moved also gets a HIDDEN change for the old site, and so
/// do their enrolments that site no longer sees.
pub(super) async fn record(tx: &mut PgConnection) -> Result<(), Error> {
    sqlx::query(CHANGED).execute(&mut *tx).await?;
    loop {
        let changed: Vec<Changed> = sqlx::query_as(CHUNK).fetch_all(&mut *tx).await?;
        if changed.is_empty() {
            return Ok(());
        }
        let mut many = Many::new();
        let (mut moved, mut lost, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        for person in changed {
            let name = format!("staff/{}", person.employee_number);
            if let Some(old) = person.old_site.filter(|old| *old != person.site) {
                moved.push(name.clone());
                lost.push(old);
                kept.push(person.site.clone());
            }
            many.push(name, kind(&person.kind, &person.verb)?, Some(person.site));
        }
        // The sync holds `staff` from before its first write (`store::lock`).
        many.record_under_lock(tx, COLLECTION).await?;
        changes::record_hidden_many(tx, COLLECTION, &moved, &lost, &kept).await?;
        hide_enrolments(tx, &moved, &lost, &kept).await?;
    }
}

/// A change as the merge noted it.
fn kind(kind: &str, verb: &str) -> Result<Kind, Error> {
    Ok(match (kind, verb) {
        ("created", _) => Kind::Created,
        ("updated", _) => Kind::Updated,
        ("state_changed", "leave") => Kind::StateChanged("leave"),
        ("state_changed", "rejoin") => Kind::StateChanged("rejoin"),
        ("state_changed", "move") => Kind::StateChanged("move"),
        _ => {
            return Err(Error::Internal(anyhow::anyhow!(
                "the sync noted a change {kind:?} {verb:?}"
            )));
        }
    })
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
