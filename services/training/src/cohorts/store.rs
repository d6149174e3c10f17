//! The cohort table: its SQL and row mapping.

use chrono::{DateTime, NaiveDate, Utc};
use qi_filter::Range;
use qi_platform::Error;
use qi_platform::convert::{date, etag, timestamp};
use qi_platform::extract::Order;
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{ListScope, Owner};
use qi_platform::paging::Page;
use qi_proto::training as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{COLLECTION, Changes, CohortRef, CohortState, NewCohort};
use crate::{courses, sessions};

struct CohortRow {
    site: Option<String>,
    id: String,
    course_id: String,
    display_name: String,
    start_date: NaiveDate,
    capacity: i32,
    state: String,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
    facilitators: Vec<String>,
    cancel_reason: Option<String>,
    uid: Uuid,
    enrolled_count: i64,
    waitlist_count: i64,
}

impl TryFrom<CohortRow> for pb::Cohort {
    type Error = Error;
    fn try_from(r: CohortRow) -> Result<Self, Error> {
        let state = CohortState::from_column(&r.state)?.to_proto();
        Ok(pb::Cohort {
            name: Owner::from_column(r.site)?.child(COLLECTION, &r.id),
            course: Owner::Trust.child(courses::COLLECTION, &r.course_id),
            display_name: r.display_name,
            start_date: Some(date(r.start_date)),
            capacity: r.capacity,
            state: state as i32,
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
            etag: etag(r.revision),
            facilitators: r.facilitators,
            enrolled_count: i32::try_from(r.enrolled_count).unwrap_or(i32::MAX),
            waitlist_count: i32::try_from(r.waitlist_count).unwrap_or(i32::MAX),
            cancel_reason: r.cancel_reason.unwrap_or_default(),
        })
    }
}

/// The statement GetCohort reads one cohort with: by site (`$1`, NULL for a trust-wide
/// cohort) and id (`$2`), so a name whose site is not where the cohort lives finds nothing.
/// In a file so the store's checked `query_file_as!` and the bench's raw peer share one text.
pub const COHORT_READ_SQL: &str = include_str!("read.sql");

/// Finds a cohort by owner and id, locking its row for the transaction when `lock` (every
/// change to its enrolments serializes on it, which is what keeps capacity exact).
pub(crate) async fn locate(
    conn: &mut PgConnection,
    owner: &Owner,
    id: &str,
    lock: bool,
) -> Result<Option<CohortRef>, Error> {
    // One statement per lock, each checked at build time.
    macro_rules! by_name {
        ($($lock:literal)?) => {
            sqlx::query_as!(
                CohortRef,
                "SELECT uid, site, id, course_id, state, capacity, revision FROM cohort
                 WHERE coalesce(site, '') = coalesce($1, '') AND id = $2" $(+ $lock)?,
                owner.site_column(),
                id,
            )
            .fetch_optional(&mut *conn)
            .await?
        };
    }
    Ok(if lock {
        by_name!(" FOR UPDATE")
    } else {
        by_name!()
    })
}

/// Inserts a cohort and its sessions; `AlreadyExists` if the name is taken,
/// `FailedPrecondition` if the course does not exist.
pub(crate) async fn insert(conn: &mut PgConnection, c: &NewCohort) -> Result<pb::Cohort, Error> {
    let Some(session_count) = courses::store::session_count(conn, &c.course_id).await? else {
        return Err(Error::FailedPrecondition {
            reason: "COURSE_NOT_FOUND",
            message: format!(
                "cohort.course: {} does not exist; create it first",
                Owner::Trust.child(courses::COLLECTION, &c.course_id)
            ),
        });
    };
    let uid = sqlx::query_scalar!(
        "INSERT INTO cohort (site, id, course_id, display_name, start_date, capacity, facilitators)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT DO NOTHING
         RETURNING uid",
        c.owner.site_column(),
        c.id,
        c.course_id,
        c.display_name,
        c.start_date,
        c.capacity,
        &c.facilitators,
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(uid) = uid else {
        return Err(Error::AlreadyExists {
            name: c.owner.child(COLLECTION, &c.id),
        });
    };
    sessions::store::schedule(conn, uid, c.start_date, session_count).await?;
    get(conn, &c.owner, &c.id)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("the cohort just created is missing")))
}

/// Reads one cohort by owner and id (see [`COHORT_READ_SQL`]).
pub(crate) async fn get(
    conn: &mut PgConnection,
    owner: &Owner,
    id: &str,
) -> Result<Option<pb::Cohort>, Error> {
    let row = sqlx::query_file_as!(CohortRow, "src/cohorts/read.sql", owner.site_column(), id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(TryInto::try_into).transpose()
}

/// Whose enrolments a list of cohorts keeps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LearnerFilter {
    /// The learner's employee number.
    pub(crate) number: String,
    /// Of a trust-wide cohort, the learner counts only while now at one of these sites
    /// (`None`: wherever they are), as the cohort's roster shows its learners.
    pub(crate) roster_sites: Option<Vec<String>>,
}

/// Which cohorts a page lists, beyond the parent's scope.
#[derive(Debug, Default)]
pub(crate) struct Wanted<'a> {
    /// Only those a learner holds a place on or waits for.
    pub(crate) learner: Option<&'a LearnerFilter>,
    /// In this state (stored form).
    pub(crate) state: Option<&'static str>,
    /// Last changed in this range (a nightly extract's).
    pub(crate) updated: Range<DateTime<Utc>>,
    /// Newest start first, or oldest change first.
    pub(crate) order: Order,
}

/// `query_as!` into [`CohortRow`] of the cohorts in a scope (`$1` trust-wide, `$2` sites),
/// a learner's (`$3` number, `$4` roster sites), a state (`$5`) and a change range (`$6`,
/// `$7`), then `$tail`: the columns are read.sql's (a file's statement cannot be extended)
/// and the scope is `qi_platform::names::LIST_SCOPE_SQL`, written out once here.
macro_rules! cohort_rows {
    ($scope:expr, $wanted:expr, $tail:literal $(, $more:expr)* $(,)?) => {{
        let (scope, wanted): (&ListScope, &Wanted<'_>) = ($scope, $wanted);
        let learner = wanted.learner;
        sqlx::query_as!(
            CohortRow,
            r#"SELECT c.site, c.id, c.course_id, c.display_name, c.start_date, c.capacity,
                      c.state, c.create_time, c.update_time, c.revision, c.facilitators,
                      c.cancel_reason, c.uid,
                      (SELECT count(*) FROM enrolment e
                       WHERE e.cohort_uid = c.uid AND e.state = 'enrolled') AS "enrolled_count!",
                      (SELECT count(*) FROM enrolment e
                       WHERE e.cohort_uid = c.uid AND e.state = 'waitlisted') AS "waitlist_count!"
               FROM cohort c
               WHERE CASE WHEN $1 THEN site IS NULL
                          ELSE site IS NOT NULL AND ($2::text[] IS NULL OR site = ANY($2)) END
                 AND ($3::text IS NULL OR (
                      c.uid = ANY (ARRAY(
                          SELECT e.cohort_uid FROM enrolment e
                          WHERE e.employee_number = $3 AND e.state <> 'withdrawn'))
                      AND (c.site IS NOT NULL OR $4::text[] IS NULL OR EXISTS (
                          SELECT 1 FROM staff s WHERE s.employee_number = $3 AND s.site = ANY($4)))))
                 AND ($5::text IS NULL OR c.state = $5)
                 AND ($6::timestamptz IS NULL OR c.update_time >= $6)
                 AND ($7::timestamptz IS NULL OR c.update_time < $7) "# + $tail,
            scope.trust,
            scope.sites.as_deref(),
            learner.map(|l| l.number.as_str()),
            learner.and_then(|l| l.roster_sites.as_deref()),
            wanted.state,
            wanted.updated.from,
            wanted.updated.before,
            $($more),*
        )
    }};
}

/// One page of the cohorts in `scope` `wanted`: newest first, or oldest change first (along
/// `cohort_update_time`); with a learner, only those on which the learner holds a place or
/// waits for one (a withdrawal is no longer an enrolment), read first by the person
/// (`enrolment_staff`) and then found by their keys.
pub(crate) async fn list(
    conn: &mut PgConnection,
    scope: &ListScope,
    wanted: &Wanted<'_>,
    page: &Page,
) -> Result<(Vec<pb::Cohort>, String), Error> {
    let order = wanted.order;
    let rows = match order {
        Order::Default => {
            cohort_rows!(
                scope,
                wanted,
                "AND ($8::date IS NULL OR c.start_date < $8
                  OR (c.start_date = $8 AND (coalesce(c.site, ''), c.id) > ($9, $10)))
             ORDER BY c.start_date DESC, coalesce(c.site, ''), c.id
             LIMIT $11",
                page.parsed_key::<NaiveDate>(0)?,
                page.after_key(1).unwrap_or(""),
                page.after_key(2).unwrap_or(""),
                page.limit(),
            )
            .fetch_all(&mut *conn)
            .await?
        }
        Order::UpdateTime => {
            cohort_rows!(
                scope,
                wanted,
                "AND ($8::timestamptz IS NULL OR (c.update_time, c.uid) > ($8, $9))
             ORDER BY c.update_time, c.uid
             LIMIT $10",
                order.after_time(page)?,
                page.parsed_key::<Uuid>(0)?.unwrap_or_default(),
                page.limit(),
            )
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let (rows, next) = page.finish(rows, |r| match order {
        Order::Default => vec![
            r.start_date.to_string(),
            r.site.clone().unwrap_or_default(),
            r.id.clone(),
        ],
        Order::UpdateTime => order.key(r.uid.to_string(), r.update_time),
    });
    rows.into_iter()
        .map(TryInto::try_into)
        .collect::<Result<Vec<_>, _>>()
        .map(|c| (c, next))
}

/// Sets a cohort's lifecycle state (and the reason it was cancelled, if it was).
pub(crate) async fn set_state(
    conn: &mut PgConnection,
    uid: uuid::Uuid,
    to: CohortState,
    reason: Option<&str>,
) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE cohort SET state = $2, cancel_reason = $3 WHERE uid = $1",
        uid,
        to.column(),
        reason,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Writes the fields an update changes.
pub(crate) async fn update(
    conn: &mut PgConnection,
    uid: uuid::Uuid,
    changes: &Changes,
) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE cohort SET display_name = coalesce($2, display_name),
                           capacity = coalesce($3, capacity),
                           facilitators = coalesce($4, facilitators)
         WHERE uid = $1",
        uid,
        changes.display_name,
        changes.capacity,
        changes.facilitators.as_deref(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Reads a cohort again after a change.
pub(crate) async fn reread(conn: &mut PgConnection, c: &CohortRef) -> Result<pb::Cohort, Error> {
    get(conn, &c.owner()?, &c.id)
        .await?
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("cohort {} vanished", c.id)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::testing::{cohort, course, day, new_cohort, page, pool, site, transaction};

    fn names(cs: &[pb::Cohort]) -> Vec<&str> {
        cs.iter().map(|c| c.name.as_str()).collect()
    }

    fn scope(trust: bool, sites: Option<&[&str]>) -> ListScope {
        ListScope {
            trust,
            sites: sites.map(|s| s.iter().map(|c| c.to_string()).collect()),
        }
    }

    #[tokio::test]
    async fn an_insert_reads_back_whole_and_a_taken_name_is_refused() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        course(&mut conn, "lean", 3).await?;
        let mut new = new_cohort(site("BAS"), "spring", "lean", "2026-03-02");
        new.facilitators = vec!["Ann".into(), "Bob".into()];
        let made = insert(&mut conn, &new).await?;
        assert_eq!(made.name, "sites/BAS/cohorts/spring");
        assert_eq!(made.course, "trust/courses/lean");
        assert_eq!(made.start_date, Some(date(day("2026-03-02"))));
        assert_eq!((made.capacity, made.facilitators.len()), (2, 2));
        assert_eq!(made.state, pb::CohortState::Planned as i32);
        assert_eq!((made.enrolled_count, made.waitlist_count), (0, 0));
        assert_eq!(
            get(&mut conn, &site("BAS"), "spring").await?,
            Some(made.clone())
        );
        // The list reads the same columns as read.sql.
        let (listed, _) = list(
            &mut conn,
            &scope(false, None),
            &Wanted::default(),
            &page(10, "")?,
        )
        .await?;
        assert_eq!(listed, vec![made]);
        // A name under another site is not this cohort.
        assert_eq!(get(&mut conn, &site("SOU"), "spring").await?, None);
        assert_eq!(get(&mut conn, &Owner::Trust, "spring").await?, None);
        match insert(&mut conn, &new).await {
            Err(Error::AlreadyExists { name }) => assert_eq!(name, "sites/BAS/cohorts/spring"),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        // The same id under another owner is another cohort, the trust's included.
        insert(
            &mut conn,
            &new_cohort(Owner::Trust, "spring", "lean", "2026-03-02"),
        )
        .await?;
        let taken = new_cohort(Owner::Trust, "spring", "lean", "2026-04-06");
        let again = insert(&mut conn, &taken).await;
        assert!(matches!(again, Err(Error::AlreadyExists { .. })));
        Ok(())
    }

    #[tokio::test]
    async fn a_cohort_of_a_missing_course_is_refused() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        match insert(
            &mut conn,
            &new_cohort(site("BAS"), "a", "absent", "2026-03-02"),
        )
        .await
        {
            Err(Error::FailedPrecondition { reason, message }) => {
                assert_eq!(reason, "COURSE_NOT_FOUND");
                assert!(message.contains("trust/courses/absent"), "{message}");
            }
            other => panic!("expected FailedPrecondition, got {other:?}"),
        }
        assert_eq!(
            locate(&mut conn, &site("BAS"), "a", false)
                .await?
                .map(|c| c.id),
            None
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_list_keeps_to_its_scope_newest_first_page_by_page() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        course(&mut conn, "lean", 1).await?;
        for (owner, id, start) in [
            (site("SOU"), "b", "2026-01-05"),
            (site("BAS"), "b", "2026-02-02"),
            (Owner::Trust, "t", "2026-02-02"),
            (site("BAS"), "a", "2026-02-02"),
            (site("BRM"), "a", "2026-03-02"),
        ] {
            insert(&mut conn, &new_cohort(owner, id, "lean", start)).await?;
        }
        let all = page(50, "")?;
        let listed = async |conn: &mut PgConnection, scope| -> anyhow::Result<Vec<String>> {
            let (cs, _) = list(conn, &scope, &Wanted::default(), &all).await?;
            Ok(names(&cs).into_iter().map(str::to_owned).collect())
        };
        assert_eq!(
            listed(&mut conn, scope(true, None)).await?,
            ["trust/cohorts/t"]
        );
        assert_eq!(
            listed(&mut conn, scope(false, Some(&["BAS"]))).await?,
            ["sites/BAS/cohorts/a", "sites/BAS/cohorts/b"]
        );
        assert_eq!(
            listed(&mut conn, scope(false, Some(&["BRM", "SOU"]))).await?,
            ["sites/BRM/cohorts/a", "sites/SOU/cohorts/b"]
        );
        assert!(listed(&mut conn, scope(false, Some(&[]))).await?.is_empty());
        // Every site's cohorts, none of the trust's: newest first, then by name.
        let sites = scope(false, None);
        let (first, next) = list(&mut conn, &sites, &Wanted::default(), &page(2, "")?).await?;
        let (second, end) = list(&mut conn, &sites, &Wanted::default(), &page(2, &next)?).await?;
        assert_eq!(
            names(&first),
            ["sites/BRM/cohorts/a", "sites/BAS/cohorts/a"]
        );
        assert_eq!(
            names(&second),
            ["sites/BAS/cohorts/b", "sites/SOU/cohorts/b"]
        );
        assert!(end.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn a_list_by_learner_holds_their_places_and_waits_not_withdrawals_as_rosters_show()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        course(&mut conn, "lean", 1).await?;
        // 1 and 2 work at BAS, 3 at SOU.
        for (number, at) in [
            ("10000001", "BAS"),
            ("10000002", "BAS"),
            ("10000003", "SOU"),
        ] {
            crate::testing::staff(&mut conn, number, at, "Dee", "Pat").await?;
        }
        let placed = cohort(&mut conn, site("BAS"), "placed", "lean", 1).await?;
        let waiting = cohort(&mut conn, site("BAS"), "waiting", "lean", 1).await?;
        let left = cohort(&mut conn, site("BAS"), "left", "lean", 1).await?;
        let sou = cohort(&mut conn, site("SOU"), "sou", "lean", 1).await?;
        let trust = cohort(&mut conn, Owner::Trust, "trust", "lean", 5).await?;
        cohort(&mut conn, site("BAS"), "none", "lean", 1).await?;
        use crate::enrolments::store as enrolments;
        for (c, number, state) in [
            (&placed, "10000001", "enrolled"),
            (&waiting, "10000002", "enrolled"),
            (&waiting, "10000001", "waitlisted"),
            (&left, "10000001", "enrolled"),
            (&sou, "10000001", "enrolled"),
            (&trust, "10000001", "enrolled"),
            (&trust, "10000003", "enrolled"),
        ] {
            enrolments::insert(&mut conn, c, number, state).await?;
        }
        enrolments::withdraw(&mut conn, left.uid, "10000001").await?;
        let all = page(50, "")?;
        let of = async |conn: &mut PgConnection,
                        scope,
                        number: &str,
                        roster_sites: Option<&[&str]>|
               -> anyhow::Result<Vec<String>> {
            let learner = LearnerFilter {
                number: number.to_owned(),
                roster_sites: roster_sites.map(|s| s.iter().map(|c| c.to_string()).collect()),
            };
            let wanted = Wanted {
                learner: Some(&learner),
                ..Wanted::default()
            };
            let (cs, _) = list(conn, &scope, &wanted, &all).await?;
            Ok(names(&cs).into_iter().map(str::to_owned).collect())
        };
        // A place or a wait counts; a withdrawal does not; within the parent's sites.
        assert_eq!(
            of(&mut conn, scope(false, Some(&["BAS"])), "10000001", None).await?,
            ["sites/BAS/cohorts/placed", "sites/BAS/cohorts/waiting"]
        );
        assert_eq!(
            of(&mut conn, scope(false, None), "10000001", None).await?,
            [
                "sites/BAS/cohorts/placed",
                "sites/BAS/cohorts/waiting",
                "sites/SOU/cohorts/sou"
            ]
        );
        assert_eq!(
            of(&mut conn, scope(false, Some(&["SOU"])), "10000002", None).await?,
            Vec::<String>::new()
        );
        // A trust-wide cohort: its learner now at SOU is found by a SOU (or any) roster
        // reader, not by BAS; a BAS learner by BAS.
        let trust_scope = || scope(true, None);
        assert_eq!(
            of(&mut conn, trust_scope(), "10000003", Some(&["SOU"])).await?,
            ["trust/cohorts/trust"]
        );
        assert_eq!(
            of(&mut conn, trust_scope(), "10000003", None).await?,
            ["trust/cohorts/trust"]
        );
        assert!(
            of(&mut conn, trust_scope(), "10000003", Some(&["BAS"]))
                .await?
                .is_empty()
        );
        assert_eq!(
            of(&mut conn, trust_scope(), "10000001", Some(&["BAS"])).await?,
            ["trust/cohorts/trust"]
        );
        Ok(())
    }

    #[tokio::test]
    async fn an_update_writes_only_what_it_changes_and_a_state_its_reason() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        course(&mut conn, "lean", 1).await?;
        let c = cohort(&mut conn, site("BAS"), "a", "lean", 2).await?;
        let other = cohort(&mut conn, site("BAS"), "b", "lean", 2).await?;
        let changes = Changes {
            capacity: Some(9),
            ..Changes::default()
        };
        update(&mut conn, c.uid, &changes).await?;
        let got = reread(&mut conn, &c).await?;
        assert_eq!((got.display_name.as_str(), got.capacity), ("Cohort a", 9));
        assert_eq!(got.etag, etag(2));
        set_state(&mut conn, c.uid, CohortState::Cancelled, Some("no room")).await?;
        let got = reread(&mut conn, &c).await?;
        assert_eq!(got.state, pb::CohortState::Cancelled as i32);
        assert_eq!(got.cancel_reason, "no room");
        let untouched = reread(&mut conn, &other).await?;
        assert_eq!((untouched.capacity, untouched.etag), (2, etag(1)));
        Ok(())
    }

    #[tokio::test]
    async fn a_locating_read_for_update_holds_off_another() -> anyhow::Result<()> {
        let pool = pool().await?;
        let mut setup = qi_platform::db::begin(&pool).await?;
        course(&mut setup, "lean", 1).await?;
        cohort(&mut setup, site("BAS"), "a", "lean", 2).await?;
        setup.commit().await?;
        let bas = site("BAS");
        let mut writer = qi_platform::db::begin(&pool).await?;
        let held = locate(&mut writer, &bas, "a", true).await?;
        assert_eq!(held.map(|c| (c.id, c.capacity)), Some(("a".into(), 2)));
        let mut reader = qi_platform::db::begin(&pool).await?;
        let plain = tokio::time::timeout(
            Duration::from_secs(30),
            locate(&mut reader, &bas, "a", false),
        );
        assert!(plain.await??.is_some());
        reader.commit().await?;
        let mut other = qi_platform::db::begin(&pool).await?;
        let locked = tokio::time::timeout(
            Duration::from_millis(300),
            locate(&mut other, &bas, "a", true),
        );
        assert!(locked.await.is_err(), "FOR UPDATE waits for FOR UPDATE");
        Ok(())
    }
}
