//! A cohort's sessions (`{cohort}/sessions/{number}`): generated one week apart when the
//! cohort is scheduled; each can be moved until its register is taken.

use qi_platform::convert::{date, etag, required_date};
use qi_platform::names::{self, Owner};
use qi_platform::{Error, Violations};
use qi_proto::training as pb;
use sqlx::PgConnection;

use crate::cohorts::{self, CohortRef};

/// The collection id in session names.
pub(crate) const COLLECTION: &str = "sessions";

/// Parses `{cohort}/sessions/{number}` into the cohort's owner and id and the number.
pub(crate) fn parse_name(field: &str, value: &str) -> Result<(Owner, String, i32), Error> {
    let (owner, ids) = names::parse_nested(field, value, &[cohorts::COLLECTION, COLLECTION])?;
    let [cohort, number]: [String; 2] = ids
        .try_into()
        .map_err(|_| Error::invalid(field, "expected a cohort and a session number"))?;
    names::validate_id(field, &cohort)?;
    let number = number
        .parse::<i32>()
        .ok()
        .filter(|n| (1..=52).contains(n))
        .ok_or_else(|| Error::invalid(field, "the session number is 1 to 52"))?;
    Ok((owner, cohort, number))
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    number: i32,
    date: chrono::NaiveDate,
    register_taken: bool,
    revision: i64,
}

fn to_proto(cohort: &str, r: SessionRow) -> pb::Session {
    pb::Session {
        name: format!("{cohort}/{COLLECTION}/{}", r.number),
        number: r.number,
        date: Some(date(r.date)),
        register_taken: r.register_taken,
        etag: etag(r.revision),
    }
}

/// A cohort's sessions, in order.
pub(crate) async fn list(
    conn: &mut PgConnection,
    cohort: &CohortRef,
) -> Result<Vec<pb::Session>, Error> {
    let rows: Vec<SessionRow> = sqlx::query_as(
        "SELECT number, date, register_taken, revision FROM session WHERE cohort_uid = $1 ORDER BY number",
    )
    .bind(cohort.uid)
    .fetch_all(&mut *conn)
    .await?;
    let name = cohort.name()?;
    Ok(rows.into_iter().map(|r| to_proto(&name, r)).collect())
}

/// The fields UpdateSession may change.
const UPDATABLE: &[&str] = &["date"];

/// Moves a session of a locked cohort.
pub(crate) async fn update(
    conn: &mut PgConnection,
    cohort: &CohortRef,
    number: i32,
    session: &pb::Session,
    mask: Option<&prost_types::FieldMask>,
) -> Result<pb::Session, Error> {
    qi_platform::update_mask::paths(mask, UPDATABLE, |_| session.date.is_some())?;
    let mut v = Violations::new();
    let new_date = v.check(required_date("session.date", session.date.as_ref()).map(Some));
    v.finish()?;
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT number, date, register_taken, revision FROM session
         WHERE cohort_uid = $1 AND number = $2 FOR UPDATE",
    )
    .bind(cohort.uid)
    .bind(number)
    .fetch_optional(&mut *conn)
    .await?;
    let name = format!("{}/{COLLECTION}/{number}", cohort.name()?);
    let row = row.ok_or_else(|| Error::not_found(&name))?;
    if !session.etag.is_empty() && session.etag != etag(row.revision) {
        return Err(Error::Aborted {
            message: "session.etag: the session changed since it was read; read it again".into(),
        });
    }
    if row.register_taken {
        return Err(Error::FailedPrecondition {
            reason: "REGISTER_TAKEN",
            message: format!("{name}: its register is taken; it can no longer move"),
        });
    }
    let updated: SessionRow = sqlx::query_as(
        "UPDATE session SET date = $3 WHERE cohort_uid = $1 AND number = $2
         RETURNING number, date, register_taken, revision",
    )
    .bind(cohort.uid)
    .bind(number)
    .bind(new_date)
    .fetch_one(&mut *conn)
    .await?;
    Ok(to_proto(&cohort.name()?, updated))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_carry_their_number() {
        let (_, cohort, n) = parse_name("session", "sites/BAS/cohorts/c1/sessions/5").unwrap();
        assert_eq!((cohort.as_str(), n), ("c1", 5));
        for bad in [
            "sites/BAS/cohorts/c1/sessions/0",
            "sites/BAS/cohorts/c1/sessions/x",
            "sites/BAS/cohorts/c1/sessions/53",
        ] {
            assert!(parse_name("session", bad).is_err(), "{bad}");
        }
    }
}
