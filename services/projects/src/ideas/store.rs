//! The `idea` table: submitting, reading, paging and the triage moves' writes.

use chrono::{DateTime, NaiveDate, Utc};
use qi_filter::Range;
use qi_platform::convert::{date, etag, timestamp};
use qi_platform::extract::Order;
use qi_platform::paging::Page;
use qi_platform::{Error, SiteCode};
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::history::{self, Step};
use super::{COLLECTION, IdeaRef, NewIdea};
use crate::stored::Column;

/// Finds an idea for a change, locking its row.
pub(super) async fn lock(
    conn: &mut PgConnection,
    site: &SiteCode,
    id: &str,
) -> Result<Option<IdeaRef>, Error> {
    Ok(sqlx::query_as!(
        IdeaRef,
        "SELECT uid, site, id, title, description, ward_id, theme, submitter_staff, state,
                revision
         FROM idea WHERE site = $1 AND id = $2 FOR UPDATE",
        site.as_str(),
        id,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

struct IdeaRow {
    uid: Uuid,
    site: String,
    id: String,
    title: String,
    description: String,
    ward_id: Option<String>,
    submitter: String,
    submitter_staff: Option<String>,
    theme: String,
    state: String,
    decline_reason: Option<String>,
    merged_idea: Option<String>,
    merged_project: Option<String>,
    project: Option<String>,
    reopen_reason: Option<String>,
    decision_time: Option<chrono::DateTime<chrono::Utc>>,
    reviewer: Option<String>,
    submit_date: NaiveDate,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
    revision: i64,
}

/// `query_as!` into [`IdeaRow`] of the idea's columns (with the names it links to) and
/// `$tail`: the columns are written once, and every statement is still checked at build time.
macro_rules! idea_rows {
    ($tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            IdeaRow,
            "SELECT i.uid, i.site, i.id, i.title, i.description, i.ward_id, i.submitter,
                    i.submitter_staff, i.theme, i.state, i.decline_reason,
                    'sites/' || m.site || '/ideas/' || m.id AS merged_idea,
                    'sites/' || mp.lead_site || '/projects/' || mp.id AS merged_project,
                    'sites/' || p.lead_site || '/projects/' || p.id AS project,
                    i.reopen_reason, i.decision_time, i.reviewer, i.submit_date, i.create_time,
                    i.update_time, i.revision
             FROM idea i
             LEFT JOIN idea m ON m.uid = i.merged_idea_uid
             LEFT JOIN project mp ON mp.uid = i.merged_project_uid
             LEFT JOIN project p ON p.uid = i.project_uid"
                + $tail,
            $($arg),*
        )
    };
}

impl TryFrom<IdeaRow> for pb::Idea {
    type Error = Error;
    fn try_from(r: IdeaRow) -> Result<Self, Error> {
        Ok(pb::Idea {
            name: format!("sites/{}/{COLLECTION}/{}", r.site, r.id),
            title: r.title,
            description: r.description,
            ward: r
                .ward_id
                .map(|w| format!("sites/{}/{}/{w}", r.site, crate::wards::COLLECTION))
                .unwrap_or_default(),
            submitter: r.submitter,
            submitter_staff: r.submitter_staff.unwrap_or_default(),
            theme: r.theme,
            state: pb::IdeaState::from_column(&r.state)? as i32,
            decline_reason: r.decline_reason.unwrap_or_default(),
            merged_into: r.merged_idea.or(r.merged_project).unwrap_or_default(),
            project: r.project.unwrap_or_default(),
            reopen_reason: r.reopen_reason.unwrap_or_default(),
            create_time: Some(timestamp(r.create_time)),
            update_time: Some(timestamp(r.update_time)),
            decision_time: r.decision_time.map(timestamp),
            etag: etag(r.revision),
            submit_date: Some(date(r.submit_date)),
            reviewer: r.reviewer.unwrap_or_default(),
        })
    }
}

/// Reads one idea by its internal id.
pub(super) async fn read(conn: &mut PgConnection, uid: Uuid) -> Result<pb::Idea, Error> {
    let row = idea_rows!(" WHERE i.uid = $1", uid)
        .fetch_one(&mut *conn)
        .await?;
    row.try_into()
}

/// Inserts a submitted idea; `None` if its id is taken at its site.
pub(super) async fn insert(
    conn: &mut PgConnection,
    new: &NewIdea,
    submit_date: NaiveDate,
) -> Result<Option<Uuid>, Error> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO idea (uid, site, id, title, description, ward_id, submitter,
                           submitter_staff, theme, submit_date)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT DO NOTHING RETURNING uid",
        Uuid::now_v7(),
        new.site.as_str(),
        new.id,
        new.title,
        new.description,
        new.ward,
        new.submitter,
        new.submitter_staff,
        new.theme,
        submit_date,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Reads one idea by its site and id.
pub(super) async fn find(
    conn: &mut PgConnection,
    site: &SiteCode,
    id: &str,
) -> Result<Option<pb::Idea>, Error> {
    let row = idea_rows!(" WHERE i.site = $1 AND i.id = $2", site.as_str(), id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(TryInto::try_into).transpose()
}

/// What a page of ideas is chosen by.
#[derive(Debug, Default)]
pub(super) struct ListFilter<'a> {
    /// Ideas of these sites (`None`: every site).
    pub(super) sites: Option<Vec<String>>,
    /// In this state, if given.
    pub(super) state: Option<&'a str>,
    /// With this theme (any case), if not empty.
    pub(super) theme: &'a str,
    /// Submitted by this staff name (canonical), if given.
    pub(super) submitter: Option<&'a str>,
    /// Last changed in this range (a nightly extract's).
    pub(super) updated: Range<DateTime<Utc>>,
    /// Newest first, or oldest change first.
    pub(super) order: Order,
}

/// One page of ideas, newest first, as `filter` chooses them.
pub(super) async fn list(
    conn: &mut PgConnection,
    filter: &ListFilter<'_>,
    (after, after_time): (Option<Uuid>, Option<DateTime<Utc>>),
    page: &Page,
) -> Result<(Vec<pb::Idea>, String), Error> {
    let rows = idea_rows!(
        "
         WHERE ($1::text[] IS NULL OR i.site = ANY($1))
           AND ($2::text IS NULL OR i.state = $2)
           AND ($3 = '' OR lower(i.theme) = lower($3))
           AND ($4::uuid IS NULL OR CASE WHEN $7 THEN (i.update_time, i.uid) > ($8, $4)
                                         ELSE i.uid < $4 END)
           AND ($6::text IS NULL OR i.submitter_staff = $6)
           AND ($9::timestamptz IS NULL OR i.update_time >= $9)
           AND ($10::timestamptz IS NULL OR i.update_time < $10)
         ORDER BY CASE WHEN $7 THEN i.update_time END, CASE WHEN $7 THEN i.uid END,
                  i.uid DESC
         LIMIT $5",
        filter.sites.as_deref(),
        filter.state,
        filter.theme,
        after,
        page.limit(),
        filter.submitter,
        filter.order == Order::UpdateTime,
        after_time,
        filter.updated.from,
        filter.updated.before,
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| filter.order.key(r.uid.to_string(), r.update_time));
    let ideas = rows
        .into_iter()
        .map(TryInto::try_into)
        .collect::<Result<_, _>>()?;
    Ok((ideas, next))
}

/// What an edit writes: the fields UpdateIdea changes, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Edit {
    pub(super) title: String,
    pub(super) description: String,
    pub(super) ward_id: Option<String>,
    pub(super) theme: String,
}

/// Writes an edit of the idea `uid`; nothing (the etag stays) when it changes nothing.
pub(super) async fn update(conn: &mut PgConnection, uid: Uuid, e: &Edit) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE idea SET title = $2, description = $3, ward_id = $4, theme = $5
         WHERE uid = $1
           AND (title, description, ward_id, theme) IS DISTINCT FROM ($2, $3, $4, $5)",
        uid,
        e.title,
        e.description,
        e.ward_id,
        e.theme,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The uid and state of the idea a merge names as its target, if it exists.
pub(super) async fn merge_target(
    conn: &mut PgConnection,
    site: &SiteCode,
    id: &str,
) -> Result<Option<(Uuid, String)>, Error> {
    let row = sqlx::query!(
        "SELECT uid, state FROM idea WHERE site = $1 AND id = $2",
        site.as_str(),
        id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| (r.uid, r.state)))
}

/// The write of one triage move.
#[derive(Debug, Clone, Copy)]
pub(super) enum Triage<'a> {
    /// Under review.
    Review,
    /// Accepted, linked to the project it became.
    Accept { project: Uuid },
    /// Declined, with a reason.
    Decline { reason: &'a str },
    /// Merged into another idea or a project.
    Merge {
        idea: Option<Uuid>,
        project: Option<Uuid>,
    },
    /// Under review again, with a reason.
    Reopen { reason: &'a str },
}

/// Writes a triage move on the idea `uid`, made at `step`, and keeps it in the idea's
/// history.
pub(super) async fn triage(
    conn: &mut PgConnection,
    uid: Uuid,
    t: Triage<'_>,
    step: &Step,
) -> Result<(), Error> {
    let (state, reason) = match t {
        Triage::Review => ("under_review", ""),
        Triage::Reopen { reason } => ("under_review", reason),
        Triage::Accept { .. } => ("accepted", ""),
        Triage::Decline { reason } => ("declined", reason),
        Triage::Merge { .. } => ("merged", ""),
    };
    // The history first: it settles the move's time (never before the last step's).
    let at = history::record(conn, uid, state, step, reason).await?;
    let query = match t {
        Triage::Review => {
            sqlx::query!("UPDATE idea SET state = 'under_review' WHERE uid = $1", uid)
        }
        Triage::Accept { project } => sqlx::query!(
            "UPDATE idea SET state = 'accepted', project_uid = $2, decision_time = $3
             WHERE uid = $1",
            uid,
            project,
            at,
        ),
        Triage::Decline { reason } => sqlx::query!(
            "UPDATE idea SET state = 'declined', decline_reason = $2, decision_time = $3
             WHERE uid = $1",
            uid,
            reason,
            at,
        ),
        Triage::Merge { idea, project } => sqlx::query!(
            "UPDATE idea SET state = 'merged', merged_idea_uid = $2, merged_project_uid = $3,
                    decision_time = $4
             WHERE uid = $1",
            uid,
            idea,
            project,
            at,
        ),
        Triage::Reopen { reason } => sqlx::query!(
            "UPDATE idea SET state = 'under_review', decline_reason = NULL,
                    reopen_reason = $2, decision_time = NULL
             WHERE uid = $1",
            uid,
            reason,
        ),
    };
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Assigns the idea `uid` to `reviewer` (`None`: no one); nothing when it is unchanged.
pub(super) async fn assign(
    conn: &mut PgConnection,
    uid: Uuid,
    reviewer: Option<&str>,
) -> Result<(), Error> {
    sqlx::query!(
        "UPDATE idea SET reviewer = $2 WHERE uid = $1 AND reviewer IS DISTINCT FROM $2",
        uid,
        reviewer,
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{after_uid, day, everything, pages, project, site, transaction};

    fn new(site_code: &str, id: &str, theme: &str) -> NewIdea {
        NewIdea {
            site: site(site_code),
            id: id.to_owned(),
            title: format!("Idea {id}"),
            description: "Why".into(),
            ward: None,
            submitter: "A Nurse".into(),
            submitter_staff: Some("staff/12345678".into()),
            theme: theme.to_owned(),
            submit_date: None,
            request_id: String::new(),
        }
    }

    async fn submit(conn: &mut PgConnection, site_code: &str, id: &str) -> anyhow::Result<Uuid> {
        let uid = insert(conn, &new(site_code, id, "Falls"), day("2026-03-01")).await?;
        let uid = uid.expect("inserted");
        history::record(conn, uid, "submitted", &on(Some("2026-03-01")), "").await?;
        Ok(uid)
    }

    /// A move by a team member on `day` (`None`: now).
    fn on(d: Option<&str>) -> Step {
        let ctx = qi_platform::AccessContext {
            subject: "lead@trust".into(),
            ..crate::testing::caller(Some("00123456"))
        };
        Step::by(&ctx, d.map(day))
    }

    fn now() -> Step {
        on(None)
    }

    fn names(ideas: &[pb::Idea]) -> Vec<&str> {
        ideas.iter().map(|i| i.name.as_str()).collect()
    }

    #[tokio::test]
    async fn an_insert_reads_back_and_a_taken_id_at_the_site_is_refused() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        sqlx::query!("INSERT INTO ward (site, id, display_name) VALUES ('BAS', 'w1', 'Ward 1')")
            .execute(&mut *conn)
            .await?;
        let mut idea = new("BAS", "i1", "Falls");
        idea.ward = Some("w1".into());
        let uid = insert(&mut conn, &idea, day("2026-03-01"))
            .await?
            .expect("inserted");
        let got = read(&mut conn, uid).await?;
        assert_eq!(got.name, "sites/BAS/ideas/i1");
        assert_eq!(got.ward, "sites/BAS/wards/w1");
        assert_eq!(
            (got.submitter.as_str(), got.theme.as_str()),
            ("A Nurse", "Falls")
        );
        assert_eq!(got.submitter_staff, "staff/12345678");
        assert_eq!(got.state, pb::IdeaState::Submitted as i32);
        assert_eq!(got.submit_date, Some(date(day("2026-03-01"))));
        assert!(got.decision_time.is_none() && got.merged_into.is_empty());
        let found = find(&mut conn, &site("BAS"), "i1").await?;
        assert_eq!(found.map(|i| i.name), Some(got.name));
        assert!(find(&mut conn, &site("SOU"), "i1").await?.is_none());
        assert_eq!(insert(&mut conn, &idea, day("2026-03-02")).await?, None);
        // Idea ids are unique per site.
        assert!(
            insert(&mut conn, &new("SOU", "i1", ""), day("2026-03-02"))
                .await?
                .is_some()
        );
        let locked = lock(&mut conn, &site("BAS"), "i1").await?.expect("found");
        assert_eq!((locked.uid, locked.ward_id.as_deref()), (uid, Some("w1")));
        assert_eq!((locked.state.as_str(), locked.revision), ("submitted", 1));
        assert_eq!(
            merge_target(&mut conn, &site("BAS"), "i1").await?,
            Some((uid, "submitted".to_owned()))
        );
        assert!(lock(&mut conn, &site("BRM"), "i1").await?.is_none());
        Ok(())
    }

    #[tokio::test]
    async fn a_list_keeps_to_its_sites_state_and_theme_newest_first_page_by_page()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        submit(&mut conn, "BAS", "a").await?;
        insert(&mut conn, &new("SOU", "b", "Sepsis"), day("2026-03-01")).await?;
        let c = submit(&mut conn, "BAS", "c").await?;
        submit(&mut conn, "BRM", "d").await?;
        triage(&mut conn, c, Triage::Review, &now()).await?;
        let all = async |conn: &mut PgConnection, sites: Option<&[&str]>, state, theme| {
            let filter = ListFilter {
                sites: sites.map(|s| s.iter().map(|c| c.to_string()).collect()),
                state,
                theme,
                ..ListFilter::default()
            };
            let (ideas, _) = list(conn, &filter, (None, None), &everything()?).await?;
            anyhow::Ok(ideas.into_iter().map(|i| i.name).collect::<Vec<_>>())
        };
        assert_eq!(
            all(&mut conn, Some(&["BAS"]), None, "").await?,
            ["sites/BAS/ideas/c", "sites/BAS/ideas/a"]
        );
        assert_eq!(
            all(&mut conn, None, Some("under_review"), "").await?,
            ["sites/BAS/ideas/c"]
        );
        assert_eq!(
            all(&mut conn, None, None, "sEPSIS").await?,
            ["sites/SOU/ideas/b"]
        );
        let paged = pages(3, async |page| {
            let after = after_uid(&page);
            list(&mut conn, &ListFilter::default(), (after, None), &page).await
        })
        .await?;
        let paged: Vec<Vec<&str>> = paged.iter().map(|p| names(p)).collect();
        assert_eq!(
            paged,
            [
                vec![
                    "sites/BRM/ideas/d",
                    "sites/BAS/ideas/c",
                    "sites/SOU/ideas/b"
                ],
                vec!["sites/BAS/ideas/a"],
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_list_by_submitter_holds_only_that_persons_ideas_within_its_sites()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let by = |site_code: &str, id: &str, staff: Option<&str>| {
            let mut idea = new(site_code, id, "Falls");
            idea.submitter_staff = staff.map(str::to_owned);
            idea
        };
        for (site_code, id, staff) in [
            ("BAS", "a", Some("staff/12345678")),
            ("BAS", "b", Some("staff/87654321")),
            ("SOU", "c", Some("staff/12345678")),
            ("BAS", "d", None),
            ("BAS", "e", Some("staff/12345678")),
        ] {
            insert(&mut conn, &by(site_code, id, staff), day("2026-03-01")).await?;
        }
        let of = async |conn: &mut PgConnection, sites: Option<&[&str]>, submitter| {
            let filter = ListFilter {
                sites: sites.map(|s| s.iter().map(|c| c.to_string()).collect()),
                submitter: Some(submitter),
                ..ListFilter::default()
            };
            let (ideas, _) = list(conn, &filter, (None, None), &everything()?).await?;
            anyhow::Ok(ideas.into_iter().map(|i| i.name).collect::<Vec<_>>())
        };
        assert_eq!(
            of(&mut conn, None, "staff/12345678").await?,
            [
                "sites/BAS/ideas/e",
                "sites/SOU/ideas/c",
                "sites/BAS/ideas/a"
            ]
        );
        assert_eq!(
            of(&mut conn, Some(&["BAS"]), "staff/12345678").await?,
            ["sites/BAS/ideas/e", "sites/BAS/ideas/a"]
        );
        assert_eq!(
            of(&mut conn, Some(&["SOU"]), "staff/87654321").await?,
            Vec::<String>::new()
        );
        // With the other filters, which all hold at once.
        let filter = ListFilter {
            state: Some("submitted"),
            theme: "FALLS",
            submitter: Some("staff/87654321"),
            ..ListFilter::default()
        };
        let (ideas, _) = list(&mut conn, &filter, (None, None), &everything()?).await?;
        assert_eq!(names(&ideas), ["sites/BAS/ideas/b"]);
        Ok(())
    }

    #[tokio::test]
    async fn an_edit_writes_its_fields_and_one_that_changes_nothing_writes_nothing()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        sqlx::query!("INSERT INTO ward (site, id, display_name) VALUES ('BAS', 'w1', 'Ward 1')")
            .execute(&mut *conn)
            .await?;
        let uid = submit(&mut conn, "BAS", "a").await?;
        let other = submit(&mut conn, "BAS", "b").await?;
        let edit = Edit {
            title: "Letters by noon".into(),
            description: String::new(),
            ward_id: Some("w1".into()),
            theme: "Flow".into(),
        };
        update(&mut conn, uid, &edit).await?;
        let got = read(&mut conn, uid).await?;
        assert_eq!(
            (
                got.title.as_str(),
                got.description.as_str(),
                got.ward.as_str()
            ),
            ("Letters by noon", "", "sites/BAS/wards/w1")
        );
        assert_eq!((got.theme.as_str(), got.etag.as_str()), ("Flow", &*etag(2)));
        // Who submitted it, and where it is in triage, stay.
        assert_eq!(got.submitter_staff, "staff/12345678");
        assert_eq!(got.state, pb::IdeaState::Submitted as i32);
        // The same edit again: the same idea, the same etag and update time.
        update(&mut conn, uid, &edit).await?;
        let again = read(&mut conn, uid).await?;
        assert_eq!(again, got);
        // A ward cleared is a change.
        let cleared = Edit {
            ward_id: None,
            ..edit
        };
        update(&mut conn, uid, &cleared).await?;
        let got = read(&mut conn, uid).await?;
        assert_eq!((got.ward.as_str(), got.etag), ("", etag(3)));
        assert_eq!(read(&mut conn, other).await?.etag, etag(1));
        let locked = lock(&mut conn, &site("BAS"), "a").await?.expect("found");
        assert_eq!(
            (locked.theme.as_str(), locked.submitter_staff.as_deref()),
            ("Flow", Some("staff/12345678"))
        );
        Ok(())
    }

    #[tokio::test]
    async fn triage_writes_each_move_and_its_decision() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let accepted = submit(&mut conn, "BAS", "a").await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        triage(
            &mut conn,
            accepted,
            Triage::Accept { project: p.uid },
            &now(),
        )
        .await?;
        let got = read(&mut conn, accepted).await?;
        assert_eq!(got.state, pb::IdeaState::Accepted as i32);
        assert_eq!(got.project, "sites/BAS/projects/p1");
        assert!(got.decision_time.is_some());
        assert_eq!(got.etag, etag(2));

        let declined = submit(&mut conn, "BAS", "d").await?;
        triage(
            &mut conn,
            declined,
            Triage::Decline {
                reason: "Done already",
            },
            &now(),
        )
        .await?;
        let got = read(&mut conn, declined).await?;
        assert_eq!(got.state, pb::IdeaState::Declined as i32);
        assert_eq!(got.decline_reason, "Done already");
        triage(
            &mut conn,
            declined,
            Triage::Reopen {
                reason: "New evidence",
            },
            &now(),
        )
        .await?;
        let got = read(&mut conn, declined).await?;
        assert_eq!(got.state, pb::IdeaState::UnderReview as i32);
        assert_eq!(
            (got.decline_reason.as_str(), got.reopen_reason.as_str()),
            ("", "New evidence")
        );
        assert!(got.decision_time.is_none());

        let into_idea = submit(&mut conn, "SOU", "m1").await?;
        let into_project = submit(&mut conn, "SOU", "m2").await?;
        let merge = |idea, project| Triage::Merge { idea, project };
        triage(&mut conn, into_idea, merge(Some(accepted), None), &now()).await?;
        triage(&mut conn, into_project, merge(None, Some(p.uid)), &now()).await?;
        assert_eq!(
            read(&mut conn, into_idea).await?.merged_into,
            "sites/BAS/ideas/a"
        );
        assert_eq!(
            read(&mut conn, into_project).await?.merged_into,
            "sites/BAS/projects/p1"
        );
        Ok(())
    }

    /// The steps of idea `uid`, oldest first: (state, time, actor, staff, reason).
    async fn steps(conn: &mut PgConnection, uid: Uuid) -> anyhow::Result<Vec<(String, String)>> {
        Ok(sqlx::query!(
            "SELECT state, to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS at,
                    actor, actor_staff, reason
             FROM idea_event WHERE idea_uid = $1 ORDER BY seq",
            uid,
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| {
            let who = format!("{} {}", r.actor, r.actor_staff.unwrap_or_default());
            (
                r.state,
                format!("{} {who} {}", r.at.unwrap_or_default(), r.reason),
            )
        })
        .collect())
    }

    #[tokio::test]
    async fn every_move_is_kept_in_order_with_its_day_actor_and_reason() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let uid = submit(&mut conn, "BAS", "h").await?;
        // Dated moves sit at noon, London time: 11:00 UTC in summer.
        triage(&mut conn, uid, Triage::Review, &on(Some("2026-03-03"))).await?;
        let declined = Triage::Decline { reason: "Not now" };
        triage(&mut conn, uid, declined, &on(Some("2026-04-10"))).await?;
        // A move dated before the last step's day is refused, and nothing is kept.
        let reopen = Triage::Reopen { reason: "Funded" };
        let Err(Error::InvalidArgument { violations }) =
            triage(&mut conn, uid, reopen, &on(Some("2026-04-09"))).await
        else {
            panic!("a move before the last step was kept")
        };
        assert_eq!(violations[0].field, "effective_date");
        assert_eq!(
            violations[0].description,
            "2026-04-09 is before the idea's last step, on 2026-04-10"
        );
        triage(&mut conn, uid, reopen, &on(Some("2026-04-10"))).await?;
        let who = "lead@trust staff/00123456";
        let at = |d: &str, reason: &str| format!("{d} {who} {reason}");
        assert_eq!(
            steps(&mut conn, uid).await?,
            [
                ("submitted".into(), at("2026-03-01 12:00", "")),
                ("under_review".into(), at("2026-03-03 12:00", "")),
                ("declined".into(), at("2026-04-10 11:00", "Not now")),
                // The same day as the decline: put at its time, never before it.
                ("under_review".into(), at("2026-04-10 11:00", "Funded")),
            ]
        );
        let got = read(&mut conn, uid).await?;
        assert_eq!(got.reopen_reason, "Funded");
        Ok(())
    }

    #[tokio::test]
    async fn a_reviewer_is_assigned_and_cleared_and_an_unchanged_one_keeps_the_etag()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let uid = submit(&mut conn, "BAS", "r").await?;
        assign(&mut conn, uid, Some("staff/00123456")).await?;
        let got = read(&mut conn, uid).await?;
        assert_eq!(
            (got.reviewer.as_str(), got.etag),
            ("staff/00123456", etag(2))
        );
        assign(&mut conn, uid, Some("staff/00123456")).await?;
        assert_eq!(read(&mut conn, uid).await?.etag, etag(2));
        assign(&mut conn, uid, None).await?;
        let got = read(&mut conn, uid).await?;
        assert_eq!((got.reviewer.as_str(), got.etag), ("", etag(3)));
        Ok(())
    }
}
