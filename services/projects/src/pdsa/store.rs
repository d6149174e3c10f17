//! The `pdsa_cycle` table: a project's cycles, numbered in order.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use qi_filter::Range;
use qi_platform::Error;
use qi_platform::convert::{date, etag, timestamp};
use qi_platform::extract::{self, Order};
use qi_platform::paging::Page;
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{COLLECTION, Fields};
use crate::projects::ProjectRef;
use crate::stored::{Column, from_optional};

/// A stored cycle, as the rules of a change read it.
pub(super) struct CycleRow {
    pub(super) project_uid: Uuid,
    pub(super) number: i32,
    pub(super) change_idea: String,
    pub(super) objective: String,
    pub(super) prediction: String,
    pub(super) plan: String,
    pub(super) do_notes: String,
    pub(super) study_notes: String,
    pub(super) act_notes: String,
    pub(super) start_date: Option<NaiveDate>,
    pub(super) end_date: Option<NaiveDate>,
    pub(super) decision: Option<String>,
    pub(super) follows: Option<i32>,
    pub(super) scale: String,
    pub(super) result: String,
    pub(super) create_time: chrono::DateTime<chrono::Utc>,
    pub(super) update_time: chrono::DateTime<chrono::Utc>,
    pub(super) revision: i64,
}

/// The cycle as the contract shows it, under the project named `project`.
pub(super) fn to_proto(project: &str, r: CycleRow) -> Result<pb::PdsaCycle, Error> {
    Ok(pb::PdsaCycle {
        name: format!("{project}/{COLLECTION}/{}", r.number),
        number: r.number,
        change_idea: r.change_idea,
        objective: r.objective,
        prediction: r.prediction,
        plan: r.plan,
        do_notes: r.do_notes,
        study_notes: r.study_notes,
        act_notes: r.act_notes,
        start_date: r.start_date.map(date),
        end_date: r.end_date.map(date),
        decision: from_optional::<pb::PdsaDecision>(r.decision.as_deref())?,
        create_time: Some(timestamp(r.create_time)),
        update_time: Some(timestamp(r.update_time)),
        etag: etag(r.revision),
        follows: r
            .follows
            .map(|n| format!("{project}/{COLLECTION}/{n}"))
            .unwrap_or_default(),
        scale: r.scale,
        result: r.result,
    })
}

/// `query_as!` into [`CycleRow`] of `$head`, the cycle's columns, then `$tail`: the columns
/// are written once, and every statement is still checked at build time.
macro_rules! cycle_rows {
    ($head:literal, $tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            CycleRow,
            $head
                + "project_uid, number, change_idea, objective, prediction, plan, do_notes, study_notes, \
                   act_notes, start_date, end_date, decision, follows, scale, result, \
                   create_time, update_time, revision"
                + $tail,
            $($arg),*
        )
    };
}

/// Calls `cycle_rows!` with its own arguments, then the cycle's [`Fields`] `$f` in the order
/// both the insert and the update write them: the list is written once.
macro_rules! with_fields {
    (cycle_rows!($($args:tt)*), $f:ident) => {
        cycle_rows!(
            $($args)*
            $f.change_idea,
            $f.objective,
            $f.prediction,
            $f.plan,
            $f.do_notes,
            $f.study_notes,
            $f.act_notes,
            $f.start_date,
            $f.end_date,
            $f.follows,
            $f.scale,
            $f.result,
        )
    };
}

/// Reads a project's cycle by its number.
pub(super) async fn read(
    conn: &mut PgConnection,
    project: &ProjectRef,
    number: i32,
) -> Result<Option<CycleRow>, Error> {
    Ok(cycle_rows!(
        "SELECT ",
        " FROM pdsa_cycle WHERE project_uid = $1 AND number = $2",
        project.uid,
        number,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// The cycle that follows cycle `number` of the project, other than `except`, if any.
pub(super) async fn follower(
    conn: &mut PgConnection,
    project: &ProjectRef,
    number: i32,
    except: i32,
) -> Result<Option<i32>, Error> {
    Ok(sqlx::query_scalar!(
        "SELECT number FROM pdsa_cycle WHERE project_uid = $1 AND follows = $2 AND number <> $3",
        project.uid,
        number,
        except,
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// Plans a project's next cycle, numbered after its last (the caller holds the project's
/// row lock, so numbers follow one another in order).
pub(super) async fn insert(
    conn: &mut PgConnection,
    project: &ProjectRef,
    f: &Fields,
) -> Result<pb::PdsaCycle, Error> {
    let row = with_fields!(
        cycle_rows!(
            "INSERT INTO pdsa_cycle (project_uid, number, change_idea, objective, prediction,
                                     plan, do_notes, study_notes, act_notes, start_date,
                                     end_date, follows, scale, result)
             SELECT $1, coalesce(max(number), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                    $11, $12, $13
             FROM pdsa_cycle WHERE project_uid = $1
             RETURNING ",
            "",
            project.uid,
        ),
        f
    )
    .fetch_one(&mut *conn)
    .await?;
    to_proto(&project.name(), row)
}

/// One page of a project's cycles, in number order, after `after`: all of them, or only
/// the ramp of cycle `ramp` (a ramp runs in number order, as each cycle follows an earlier).
pub(super) async fn list(
    conn: &mut PgConnection,
    project: &ProjectRef,
    ramp: Option<i32>,
    after: i32,
    page: &Page,
) -> Result<(Vec<pb::PdsaCycle>, String), Error> {
    let rows = match ramp {
        None => {
            cycle_rows!(
                "SELECT ",
                " FROM pdsa_cycle WHERE project_uid = $1 AND number > $2
                  ORDER BY number LIMIT $3",
                project.uid,
                after,
                page.limit(),
            )
            .fetch_all(&mut *conn)
            .await?
        }
        // Back along `follows` to the ramp's first cycle, then forward along its followers.
        Some(cycle) => {
            cycle_rows!(
                "WITH RECURSIVE back AS (
                     SELECT number, follows FROM pdsa_cycle
                     WHERE project_uid = $1 AND number = $2
                     UNION ALL
                     SELECT c.number, c.follows FROM pdsa_cycle c
                     JOIN back b ON c.project_uid = $1 AND c.number = b.follows
                 ), ramp AS (
                     SELECT number FROM back WHERE follows IS NULL
                     UNION ALL
                     SELECT c.number FROM pdsa_cycle c
                     JOIN ramp r ON c.project_uid = $1 AND c.follows = r.number
                 )
                 SELECT ",
                " FROM pdsa_cycle
                  WHERE project_uid = $1 AND number IN (SELECT number FROM ramp) AND number > $3
                  ORDER BY number LIMIT $4",
                project.uid,
                cycle,
                after,
                page.limit(),
            )
            .fetch_all(&mut *conn)
            .await?
        }
    };
    let (rows, next) = page.finish(rows, |r| vec![r.number.to_string()]);
    let name = project.name();
    let cycles = rows
        .into_iter()
        .map(|r| to_proto(&name, r))
        .collect::<Result<_, _>>()?;
    Ok((cycles, next))
}

/// Whose cycles [`list_by_change`] reads.
#[derive(Debug)]
pub(super) enum Projects<'a> {
    /// One project's.
    One(&'a ProjectRef),
    /// Those of every project led at `lead` (`None`: any site) that a caller of `sites`
    /// (`None`: every site) reads: one its sites lead or take part in.
    Every {
        lead: Option<String>,
        sites: Option<Vec<String>>,
    },
}

/// One page of the cycles of `projects` changed in `updated`, oldest change first (along
/// `pdsa_cycle_update_time`).
pub(super) async fn list_by_change(
    conn: &mut PgConnection,
    projects: &Projects<'_>,
    updated: &Range<DateTime<Utc>>,
    page: &Page,
) -> Result<(Vec<pb::PdsaCycle>, String), Error> {
    let order = Order::UpdateTime;
    // The keyset is the cycle's key (its project's uid and number) and `update_time`.
    let (after_uid, after_number) = extract::after_pair::<Uuid, i32>(page)?.unzip();
    let (one, lead, sites) = match projects {
        Projects::One(p) => (Some(p.uid), None, None),
        Projects::Every { lead, sites } => (None, lead.as_deref(), sites.as_deref()),
    };
    let rows = cycle_rows!(
        "SELECT ",
        " FROM pdsa_cycle
          WHERE ($1::uuid IS NULL OR project_uid = $1)
            AND ($1::uuid IS NOT NULL OR project_uid IN (
                 SELECT p.uid FROM project p
                 WHERE ($2::text IS NULL OR p.lead_site = $2)
                   AND ($3::text[] IS NULL OR p.lead_site = ANY($3)
                        OR p.participating_sites && $3)))
            AND ($4::timestamptz IS NULL OR update_time >= $4)
            AND ($5::timestamptz IS NULL OR update_time < $5)
            AND ($6::timestamptz IS NULL OR (update_time, project_uid, number) > ($6, $7, $8))
          ORDER BY update_time, project_uid, number
          LIMIT $9",
        one,
        lead,
        sites,
        updated.from,
        updated.before,
        order.after_time(page)?,
        after_uid.unwrap_or_default(),
        after_number.unwrap_or(0),
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| {
        order.key(extract::pair_key(r.project_uid, r.number), r.update_time)
    });
    // Each cycle named by its project: the page's projects read in one statement.
    let mut uids: Vec<Uuid> = rows.iter().map(|r| r.project_uid).collect();
    uids.sort_unstable();
    uids.dedup();
    let names: HashMap<Uuid, String> = crate::projects::store::names_of(conn, &uids).await?;
    let cycles = rows
        .into_iter()
        .map(|r| {
            let name = names.get(&r.project_uid).ok_or_else(|| {
                Error::Internal(anyhow::anyhow!("project {} vanished", r.project_uid))
            })?;
            to_proto(name, r)
        })
        .collect::<Result<_, _>>()?;
    Ok((cycles, next))
}

/// Writes a cycle's fields.
pub(super) async fn update(
    conn: &mut PgConnection,
    project: &ProjectRef,
    number: i32,
    f: &Fields,
) -> Result<pb::PdsaCycle, Error> {
    let row = with_fields!(
        cycle_rows!(
            "UPDATE pdsa_cycle SET change_idea = $3, objective = $4, prediction = $5, plan = $6,
                    do_notes = $7, study_notes = $8, act_notes = $9, start_date = $10,
                    end_date = $11, follows = $12, scale = $13, result = $14
             WHERE project_uid = $1 AND number = $2
             RETURNING ",
            "",
            project.uid,
            number,
        ),
        f
    )
    .fetch_one(&mut *conn)
    .await?;
    to_proto(&project.name(), row)
}

/// Records a cycle's decision and end date, and its act notes unless they are empty.
pub(super) async fn decide(
    conn: &mut PgConnection,
    project: &ProjectRef,
    number: i32,
    decision: pb::PdsaDecision,
    end: NaiveDate,
    act_notes: &str,
) -> Result<pb::PdsaCycle, Error> {
    let row = cycle_rows!(
        "UPDATE pdsa_cycle SET decision = $3, end_date = $4,
                act_notes = CASE WHEN $5 = '' THEN act_notes ELSE $5 END
         WHERE project_uid = $1 AND number = $2
         RETURNING ",
        "",
        project.uid,
        number,
        decision.column(),
        end,
        act_notes,
    )
    .fetch_one(&mut *conn)
    .await?;
    to_proto(&project.name(), row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{day, everything, pages, project, transaction};

    fn fields(idea: &str) -> Fields {
        Fields {
            change_idea: idea.to_owned(),
            objective: "Fewer falls at night".into(),
            prediction: "Half as many".into(),
            plan: "Two weeks on ward 4".into(),
            do_notes: "Done".into(),
            study_notes: "Studied".into(),
            act_notes: "Acted".into(),
            start_date: Some(day("2026-02-02")),
            end_date: Some(day("2026-02-16")),
            follows: None,
            scale: "One ward, two weeks".into(),
            result: "A third fewer".into(),
        }
    }

    async fn read_back(
        conn: &mut PgConnection,
        p: &ProjectRef,
        number: i32,
    ) -> anyhow::Result<Option<pb::PdsaCycle>> {
        Ok(read(conn, p, number)
            .await?
            .map(|r| to_proto(&p.name(), r))
            .transpose()?)
    }

    #[tokio::test]
    async fn cycles_number_per_project_and_read_back_every_field() -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "SOU", "p2").await?;
        let first = insert(&mut conn, &p, &fields("Night lights")).await?;
        assert_eq!(first.name, "sites/BAS/projects/p1/pdsaCycles/1");
        assert_eq!(first.number, 1);
        assert_eq!(first.change_idea, "Night lights");
        assert_eq!(
            (first.objective.as_str(), first.prediction.as_str()),
            ("Fewer falls at night", "Half as many")
        );
        assert_eq!(first.plan, "Two weeks on ward 4");
        assert_eq!(
            (
                first.do_notes.as_str(),
                first.study_notes.as_str(),
                first.act_notes.as_str()
            ),
            ("Done", "Studied", "Acted")
        );
        assert_eq!(first.start_date, Some(date(day("2026-02-02"))));
        assert_eq!(first.end_date, Some(date(day("2026-02-16"))));
        assert_eq!((first.decision, first.etag.as_str()), (0, "\"1\""));
        assert!(first.create_time.is_some() && first.update_time.is_some());
        assert_eq!(read_back(&mut conn, &p, 1).await?, Some(first.clone()));
        let theirs = insert(&mut conn, &other, &Fields::default()).await?;
        assert_eq!(theirs.name, "sites/SOU/projects/p2/pdsaCycles/1");
        assert_eq!((theirs.start_date, theirs.end_date), (None, None));
        let second = insert(&mut conn, &p, &fields("Bed alarms")).await?;
        assert_eq!(second.number, 2);
        assert_eq!(read_back(&mut conn, &p, 3).await?, None);
        assert_eq!(read_back(&mut conn, &other, 2).await?, None);
        assert_eq!(read_back(&mut conn, &other, 1).await?, Some(theirs));
        Ok(())
    }

    #[tokio::test]
    async fn an_update_rewrites_the_fields_and_a_decision_keeps_act_notes_unless_given()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "BAS", "p2").await?;
        insert(&mut conn, &p, &fields("Night lights")).await?;
        insert(&mut conn, &p, &fields("Bed alarms")).await?;
        let theirs = insert(&mut conn, &other, &fields("Theirs")).await?;
        let changed = Fields {
            change_idea: "Dimmed night lights".into(),
            objective: "o".into(),
            prediction: "p".into(),
            plan: String::new(),
            do_notes: "d".into(),
            study_notes: String::new(),
            act_notes: String::new(),
            start_date: Some(day("2026-03-01")),
            end_date: None,
            follows: None,
            scale: "s".into(),
            result: String::new(),
        };
        let updated = update(&mut conn, &p, 1, &changed).await?;
        assert_eq!(updated.change_idea, "Dimmed night lights");
        assert_eq!(
            (updated.objective.as_str(), updated.prediction.as_str()),
            ("o", "p")
        );
        assert_eq!(
            (updated.plan.as_str(), updated.do_notes.as_str()),
            ("", "d")
        );
        assert_eq!(
            (updated.study_notes.as_str(), updated.act_notes.as_str()),
            ("", "")
        );
        assert_eq!(updated.start_date, Some(date(day("2026-03-01"))));
        assert_eq!((updated.scale.as_str(), updated.result.as_str()), ("s", ""));
        assert_eq!(updated.end_date, None);
        assert_eq!((updated.decision, updated.etag.as_str()), (0, "\"2\""));
        assert_eq!(read_back(&mut conn, &p, 1).await?, Some(updated.clone()));
        // Only cycle 1 of p1 changed.
        assert_eq!(
            read_back(&mut conn, &p, 2).await?.map(|c| c.etag),
            Some("\"1\"".into())
        );
        assert_eq!(read_back(&mut conn, &other, 1).await?, Some(theirs));
        // Empty act notes keep the cycle's; given ones replace them.
        let decided = decide(
            &mut conn,
            &p,
            2,
            pb::PdsaDecision::Adapt,
            day("2026-02-20"),
            "",
        )
        .await?;
        assert_eq!(decided.decision, pb::PdsaDecision::Adapt as i32);
        assert_eq!(decided.end_date, Some(date(day("2026-02-20"))));
        assert_eq!(decided.act_notes, "Acted");
        assert_eq!(decided.change_idea, "Bed alarms");
        assert_eq!(decided.etag, "\"2\"");
        let decided = decide(
            &mut conn,
            &p,
            1,
            pb::PdsaDecision::Adopt,
            day("2026-03-10"),
            "Roll out",
        )
        .await?;
        assert_eq!(decided.decision, pb::PdsaDecision::Adopt as i32);
        assert_eq!(decided.act_notes, "Roll out");
        assert_eq!(read_back(&mut conn, &p, 1).await?, Some(decided));
        Ok(())
    }

    #[tokio::test]
    async fn cycles_list_in_number_order_page_by_page_and_only_the_projects() -> anyhow::Result<()>
    {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "BAS", "p2").await?;
        for i in 1..=5 {
            insert(&mut conn, &p, &fields(&format!("c{i}"))).await?;
            insert(&mut conn, &other, &fields("theirs")).await?;
        }
        // The handler's reading of a page token: the number the next page follows.
        let paged = pages(2, async |page| {
            let after = page
                .after_key(0)
                .map_or(0, |k| k.parse().expect("a number"));
            list(&mut conn, &p, None, after, &page).await
        })
        .await?;
        let got: Vec<Vec<(String, String)>> = paged
            .into_iter()
            .map(|page| page.into_iter().map(|c| (c.name, c.change_idea)).collect())
            .collect();
        let c = |n: i32| {
            (
                format!("sites/BAS/projects/p1/pdsaCycles/{n}"),
                format!("c{n}"),
            )
        };
        assert_eq!(got, [vec![c(1), c(2)], vec![c(3), c(4)], vec![c(5)]]);
        assert_eq!(
            list(&mut conn, &p, None, 0, &everything()?).await?.0.len(),
            5
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_ramp_reads_back_from_its_first_cycle_to_its_last_and_is_one_line()
    -> anyhow::Result<()> {
        let mut conn = transaction().await?;
        let p = project(&mut conn, "BAS", "p1").await?;
        let other = project(&mut conn, "BAS", "p2").await?;
        let after = |follows| Fields {
            follows,
            ..fields("step")
        };
        // 1 → 2 → 4 is one ramp, 3 → 5 another; p2's cycle 2 follows its own cycle 1.
        for follows in [None, Some(1), None, Some(2), Some(3)] {
            insert(&mut conn, &p, &after(follows)).await?;
        }
        insert(&mut conn, &other, &after(None)).await?;
        let theirs = insert(&mut conn, &other, &after(Some(1))).await?;
        assert_eq!(theirs.follows, "sites/BAS/projects/p2/pdsaCycles/1");
        let numbers = |cycles: Vec<pb::PdsaCycle>| -> Vec<i32> {
            cycles.into_iter().map(|c| c.number).collect()
        };
        for (from, want) in [(1, vec![1, 2, 4]), (4, vec![1, 2, 4]), (5, vec![3, 5])] {
            let got = list(&mut conn, &p, Some(from), 0, &everything()?).await?.0;
            assert_eq!(numbers(got), want, "the ramp of cycle {from}");
        }
        let paged = pages(2, async |page| {
            let after = page
                .after_key(0)
                .map_or(0, |k| k.parse().expect("a number"));
            list(&mut conn, &p, Some(2), after, &page).await
        })
        .await?;
        let paged: Vec<Vec<i32>> = paged.into_iter().map(numbers).collect();
        assert_eq!(paged, [vec![1, 2], vec![4]]);
        assert_eq!(follower(&mut conn, &p, 2, 0).await?, Some(4));
        assert_eq!(follower(&mut conn, &p, 2, 4).await?, None);
        assert_eq!(follower(&mut conn, &p, 4, 0).await?, None);
        // The table keeps a ramp one line and its cycles in order, whatever the handler does.
        sqlx::query("SAVEPOINT s").execute(&mut *conn).await?;
        let second_follower = insert(&mut conn, &p, &after(Some(2))).await;
        assert!(second_follower.is_err(), "cycle 2 already has a follower");
        sqlx::query("ROLLBACK TO SAVEPOINT s")
            .execute(&mut *conn)
            .await?;
        let later = update(&mut conn, &p, 1, &after(Some(5))).await;
        assert!(later.is_err(), "a cycle cannot follow a later one");
        Ok(())
    }
}
