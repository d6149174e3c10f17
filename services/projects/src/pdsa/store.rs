//! The `pdsa_cycle` table: a project's cycles, numbered in order.

use chrono::NaiveDate;
use qi_platform::Error;
use qi_platform::convert::{date, etag, timestamp};
use qi_platform::paging::Page;
use qi_proto::projects as pb;
use sqlx::PgConnection;

use super::{COLLECTION, Fields};
use crate::projects::ProjectRef;
use crate::stored::{Column, from_optional};

/// A stored cycle, as the rules of a change read it.
pub(super) struct CycleRow {
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
    })
}

/// `query_as!` into [`CycleRow`] of `$head`, the cycle's columns, then `$tail`: the columns
/// are written once, and every statement is still checked at build time.
macro_rules! cycle_rows {
    ($head:literal, $tail:literal, $($arg:expr),* $(,)?) => {
        sqlx::query_as!(
            CycleRow,
            $head
                + "number, change_idea, objective, prediction, plan, do_notes, study_notes, \
                   act_notes, start_date, end_date, decision, create_time, update_time, revision"
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
                                     end_date)
             SELECT $1, coalesce(max(number), 0) + 1, $2, $3, $4, $5, $6, $7, $8, $9, $10
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

/// One page of a project's cycles, in number order, after `after`.
pub(super) async fn list(
    conn: &mut PgConnection,
    project: &ProjectRef,
    after: i32,
    page: &Page,
) -> Result<(Vec<pb::PdsaCycle>, String), Error> {
    let rows = cycle_rows!(
        "SELECT ",
        " FROM pdsa_cycle WHERE project_uid = $1 AND number > $2 ORDER BY number LIMIT $3",
        project.uid,
        after,
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    let (rows, next) = page.finish(rows, |r| vec![r.number.to_string()]);
    let name = project.name();
    let cycles = rows
        .into_iter()
        .map(|r| to_proto(&name, r))
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
                    end_date = $11
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
