//! A cohort's sessions (`{cohort}/sessions/{number}`): generated one week apart when the
//! cohort is scheduled; each can be moved until its register is taken. Their handlers and
//! names.

pub(crate) mod store;

use qi_platform::changes::Kind;
use qi_platform::convert::{etag, required_date};
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{self, Owner};
use qi_platform::{AccessContext, Error, Violations};
use qi_proto::training as pb;

use crate::{TrainingApi, cohorts};

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

/// ListSessions: a cohort's sessions, in order.
pub(crate) async fn list(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::ListSessionsRequest,
) -> Result<pb::ListSessionsResponse, Error> {
    let pb::ListSessionsRequest { parent } = req;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let found = cohorts::resolve(&mut conn, &ctx, "parent", &parent, false, false).await?;
    Ok(pb::ListSessionsResponse {
        sessions: store::list(&mut conn, &found).await?,
    })
}

/// The fields UpdateSession may change.
const UPDATABLE: &[&str] = &["date"];

/// UpdateSession: moves a session, until its register is taken.
pub(crate) async fn update(
    api: &TrainingApi,
    ctx: AccessContext,
    req: pb::UpdateSessionRequest,
) -> Result<pb::UpdateSessionResponse, Error> {
    let pb::UpdateSessionRequest {
        session,
        update_mask,
    } = req;
    let session = session.ok_or_else(|| Error::invalid("session", "is required"))?;
    let (owner, cohort_id, number) = parse_name("session.name", &session.name)?;
    owner.check_write(&ctx)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    // The cohort's row is locked first, as for every change under a cohort.
    let cohort = cohorts::store::locate(&mut tx, &owner, &cohort_id, true)
        .await?
        .ok_or_else(|| Error::not_found(&session.name))?;
    qi_platform::update_mask::paths(update_mask.as_ref(), UPDATABLE, |_| session.date.is_some())?;
    let mut v = Violations::new();
    let new_date = v.check(required_date("session.date", session.date.as_ref()).map(Some));
    v.finish()?;
    let row = store::lock(&mut tx, cohort.uid, number).await?;
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
    let updated = store::set_date(&mut tx, cohort.uid, number, new_date).await?;
    let updated = store::to_proto(&cohort.name()?, updated);
    // Read by whoever reads its cohort.
    let sites = cohorts::feed_sites(&cohort);
    crate::feed::record(
        &mut tx,
        COLLECTION,
        &updated.name,
        Kind::Updated,
        sites,
        &updated,
    )
    .await?;
    tx.commit().await?;
    Ok(pb::UpdateSessionResponse {
        session: Some(updated),
    })
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
