//! PDSA cycles (`{project}/pdsaCycles/{number}`): each tests a change idea — plan with a
//! prediction, do, study against the prediction, act — and ends with a decision to adopt,
//! adapt or abandon. A project's cycles are numbered in order under its row lock; a decided
//! cycle no longer changes.

mod store;

use chrono::NaiveDate;
use qi_platform::calendar::today;
use qi_platform::changes::Kind;
use qi_platform::convert::{check_etag, long_text, optional_date, optional_text, required_text};
use qi_platform::extract::{self, Order};
use qi_platform::names::{self, ListParent, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::projects as pb;
use sqlx::PgConnection;

use crate::ProjectsApi;
use crate::feed::{self, project_sites};
use crate::projects::{self, ProjectRef};
use crate::stored::required_enum;
use store::CycleRow;

const COLLECTION: &str = "pdsaCycles";

crate::stored::column_enum!(PdsaDecision, "PDSA decision", {
    Adopt => "adopt",
    Adapt => "adapt",
    Abandon => "abandon",
});

/// A cycle's writable fields, validated.
#[derive(Debug, Default)]
struct Fields {
    change_idea: String,
    objective: String,
    prediction: String,
    plan: String,
    do_notes: String,
    study_notes: String,
    act_notes: String,
    start_date: Option<NaiveDate>,
    end_date: Option<NaiveDate>,
    /// The number of the cycle this one follows, in the same project.
    follows: Option<i32>,
    scale: String,
    result: String,
}

/// Validates a cycle of the project named `project`.
fn validate(c: &pb::PdsaCycle, project: &str, v: &mut Violations) -> Fields {
    let pb::PdsaCycle {
        name: _,
        number: _,
        change_idea,
        objective,
        prediction,
        plan,
        do_notes,
        study_notes,
        act_notes,
        start_date,
        end_date,
        decision: _,
        create_time: _,
        update_time: _,
        etag: _,
        follows,
        scale,
        result,
    } = c;
    let f = Fields {
        change_idea: v.check(required_text("pdsa_cycle.change_idea", change_idea, 500)),
        objective: v.check(long_text("pdsa_cycle.objective", objective, 1000)),
        prediction: v.check(long_text("pdsa_cycle.prediction", prediction, 1000)),
        plan: v.check(optional_text("pdsa_cycle.plan", plan, 5000)),
        do_notes: v.check(optional_text("pdsa_cycle.do_notes", do_notes, 5000)),
        study_notes: v.check(optional_text("pdsa_cycle.study_notes", study_notes, 5000)),
        act_notes: v.check(optional_text("pdsa_cycle.act_notes", act_notes, 5000)),
        start_date: v.check(optional_date("pdsa_cycle.start_date", start_date.as_ref())),
        end_date: v.check(optional_date("pdsa_cycle.end_date", end_date.as_ref())),
        follows: v.check(parse_follows(project, follows)),
        scale: v.check(optional_text("pdsa_cycle.scale", scale, 200)),
        result: v.check(optional_text("pdsa_cycle.result", result, 1000)),
    };
    if let (Some(s), Some(e)) = (f.start_date, f.end_date)
        && e < s
    {
        v.add(
            "pdsa_cycle.end_date",
            format!("{e} is before the start ({s})"),
        );
    }
    f
}

/// The number of the cycle named by `follows`, which must be a cycle of `project`.
fn parse_follows(project: &str, follows: &str) -> Result<Option<i32>, Error> {
    const FIELD: &str = "pdsa_cycle.follows";
    if follows.is_empty() {
        return Ok(None);
    }
    let number = follows
        .strip_prefix(project)
        .and_then(|rest| rest.strip_prefix(&format!("/{COLLECTION}/")))
        .ok_or_else(|| {
            Error::invalid(
                FIELD,
                format!("a cycle follows a cycle of its own project: `{project}/{COLLECTION}/{{number}}`"),
            )
        })?;
    parse_number(FIELD, number).map(Some)
}

/// Checks that the cycle numbered `number` (0 for one not yet stored) may follow the one
/// `f` names: an earlier cycle of the project that no other cycle follows yet.
async fn check_follows(
    conn: &mut PgConnection,
    project: &ProjectRef,
    number: i32,
    f: &Fields,
) -> Result<(), Error> {
    const FIELD: &str = "pdsa_cycle.follows";
    let Some(follows) = f.follows else {
        return Ok(());
    };
    if number != 0 && follows >= number {
        return Err(Error::invalid(
            FIELD,
            format!("cycle {number} can follow only an earlier cycle, not {follows}"),
        ));
    }
    if store::read(conn, project, follows).await?.is_none() {
        return Err(Error::invalid(
            FIELD,
            format!("{} has no cycle {follows}", project.name()),
        ));
    }
    if let Some(next) = store::follower(conn, project, follows, number).await? {
        return Err(Error::FailedPrecondition {
            reason: "RAMP_CONTINUED",
            message: format!(
                "cycle {follows} is already followed by cycle {next}: a ramp is one line of \
                 cycles, so follow cycle {next}'s ramp from its last cycle"
            ),
        });
    }
    Ok(())
}

fn parse_number(field: &str, s: &str) -> Result<i32, Error> {
    s.parse::<i32>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| Error::invalid(field, "a PDSA cycle's number is 1 or more"))
}

/// Finds a cycle to change: under an open project, not yet decided.
async fn locate_for_write(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    field: &str,
    name: &str,
) -> Result<(ProjectRef, CycleRow), Error> {
    let path = projects::parse_path(field, name, &[COLLECTION])?;
    let number = parse_number(field, &path.children[0])?;
    let project = projects::find(conn, ctx, field, &path, true).await?;
    let row = store::read(conn, &project, number)
        .await?
        .ok_or_else(|| Error::not_found(name))?;
    project.require_open()?;
    if row.decision.is_some() {
        return Err(Error::FailedPrecondition {
            reason: "PDSA_DECIDED",
            message: format!(
                "{name} was decided ({}): plan the next cycle instead",
                row.decision.as_deref().unwrap_or_default()
            ),
        });
    }
    Ok((project, row))
}

/// The fields UpdatePdsaCycle may change.
const UPDATABLE: &[&str] = &[
    "change_idea",
    "objective",
    "prediction",
    "plan",
    "do_notes",
    "study_notes",
    "act_notes",
    "start_date",
    "end_date",
    "follows",
    "scale",
    "result",
];

/// Plans a project's next cycle, numbered after its last.
pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CreatePdsaCycleRequest,
) -> Result<pb::CreatePdsaCycleResponse, Error> {
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let project = projects::resolve(&mut tx, &ctx, "parent", &req.parent, true).await?;
    let mut v = Violations::new();
    v.check(idempotency::validate_request_id(&req.request_id));
    let Some(cycle) = req.pdsa_cycle.as_ref() else {
        return Err(v.missing("pdsa_cycle"));
    };
    let f = validate(cycle, &project.name(), &mut v);
    v.finish()?;
    idempotency::once(tx, &ctx, &req.request_id, &req, async |tx| {
        project.require_open()?;
        check_follows(tx, &project, 0, &f).await?;
        let cycle = store::insert(tx, &project, &f).await?;
        let sites = project_sites(&project);
        feed::record(tx, COLLECTION, &cycle.name, Kind::Created, sites, &cycle).await?;
        Ok(pb::CreatePdsaCycleResponse {
            pdsa_cycle: Some(cycle),
        })
    })
    .await
}

/// Reads a cycle of a project the caller may read.
pub(crate) async fn get(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::GetPdsaCycleRequest,
) -> Result<pb::GetPdsaCycleResponse, Error> {
    let pb::GetPdsaCycleRequest { name } = req;
    let path = projects::parse_path("name", &name, &[COLLECTION])?;
    let number = parse_number("name", &path.children[0])?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let project = projects::find(&mut conn, &ctx, "name", &path, false).await?;
    let row = store::read(&mut conn, &project, number)
        .await?
        .ok_or_else(|| Error::not_found(&name))?;
    Ok(pb::GetPdsaCycleResponse {
        pdsa_cycle: Some(store::to_proto(&project.name(), row)?),
    })
}

/// Lists a project's cycles in number order, or one ramp's; or, under a `…/projects/-`
/// parent, the cycles of every project the caller reads, oldest change first.
pub(crate) async fn list(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ListPdsaCyclesRequest,
) -> Result<pb::ListPdsaCyclesResponse, Error> {
    let pb::ListPdsaCyclesRequest {
        parent,
        page_size,
        page_token,
        ramp,
        filter,
        order_by,
    } = req;
    let mut v = Violations::new();
    let every = v.check(names::wildcard_parent(
        "parent",
        &parent,
        projects::COLLECTION,
    ));
    let terms = v.check(extract::read_terms(&filter, None, false));
    let order = v.check(extract::order(&order_by));
    v.finish()?;
    let params = extract::token_params(format!("{parent}\n{ramp}"), &filter, &order_by);
    let page = Page::parse(page_size, &page_token, &params)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    if let Some(owner) = every {
        if !ramp.is_empty() {
            return Err(Error::invalid("ramp", "a ramp is of one project's cycles"));
        }
        let lead = match owner {
            ListParent::AllSites => None,
            ListParent::Owner(Owner::Site(site)) => Some(site.to_string()),
            ListParent::Owner(Owner::Trust) => {
                return Err(Error::invalid(
                    "parent",
                    "projects are led by a site: `sites/{site}/projects/-` or `sites/-/projects/-`",
                ));
            }
        };
        let every = store::Projects::Every {
            lead,
            sites: ctx.sites.sql_filter(),
        };
        let (pdsa_cycles, next_page_token) =
            store::list_by_change(&mut conn, &every, &terms.updated, &page).await?;
        return Ok(pb::ListPdsaCyclesResponse {
            pdsa_cycles,
            next_page_token,
        });
    }
    let project = projects::resolve(&mut conn, &ctx, "parent", &parent, false).await?;
    let updated = &terms.updated;
    if order == Order::UpdateTime || updated.from.is_some() || updated.before.is_some() {
        if !ramp.is_empty() {
            return Err(Error::invalid(
                "ramp",
                "a ramp is listed in its own order, without `filter` or `order_by`",
            ));
        }
        let one = store::Projects::One(&project);
        let (pdsa_cycles, next_page_token) =
            store::list_by_change(&mut conn, &one, &terms.updated, &page).await?;
        return Ok(pb::ListPdsaCyclesResponse {
            pdsa_cycles,
            next_page_token,
        });
    }
    let after: i32 = page.after_key(0).and_then(|k| k.parse().ok()).unwrap_or(0);
    let ramp = match ramp.as_str() {
        "" => None,
        name => {
            let number = name
                .strip_prefix(&project.name())
                .and_then(|rest| rest.strip_prefix(&format!("/{COLLECTION}/")))
                .ok_or_else(|| Error::invalid("ramp", format!("a cycle of {}", project.name())))?;
            let number = parse_number("ramp", number)?;
            store::read(&mut conn, &project, number)
                .await?
                .ok_or_else(|| Error::not_found(name))?;
            Some(number)
        }
    };
    let (pdsa_cycles, next_page_token) =
        store::list(&mut conn, &project, ramp, after, &page).await?;
    Ok(pb::ListPdsaCyclesResponse {
        pdsa_cycles,
        next_page_token,
    })
}

/// Changes the fields in the mask of an undecided cycle; the result is validated whole.
pub(crate) async fn update(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::UpdatePdsaCycleRequest,
) -> Result<pb::UpdatePdsaCycleResponse, Error> {
    let pb::UpdatePdsaCycleRequest {
        pdsa_cycle,
        update_mask,
    } = req;
    let cycle = pdsa_cycle.ok_or_else(|| Error::invalid("pdsa_cycle", "is required"))?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let (project, row) = locate_for_write(&mut tx, &ctx, "pdsa_cycle.name", &cycle.name).await?;
    let paths = qi_platform::update_mask::paths(update_mask.as_ref(), UPDATABLE, |p| match p {
        "change_idea" => !cycle.change_idea.is_empty(),
        "objective" => !cycle.objective.is_empty(),
        "prediction" => !cycle.prediction.is_empty(),
        "plan" => !cycle.plan.is_empty(),
        "do_notes" => !cycle.do_notes.is_empty(),
        "study_notes" => !cycle.study_notes.is_empty(),
        "act_notes" => !cycle.act_notes.is_empty(),
        "start_date" => cycle.start_date.is_some(),
        "end_date" => cycle.end_date.is_some(),
        "follows" => !cycle.follows.is_empty(),
        "scale" => !cycle.scale.is_empty(),
        "result" => !cycle.result.is_empty(),
        _ => false,
    })?;
    check_etag(&cycle.etag, row.revision, "the PDSA cycle")?;
    // The stored cycle with the masked fields replaced, validated whole.
    let mut merged = store::to_proto(&project.name(), row)?;
    for p in &paths {
        match *p {
            "change_idea" => merged.change_idea = cycle.change_idea.clone(),
            "objective" => merged.objective = cycle.objective.clone(),
            "prediction" => merged.prediction = cycle.prediction.clone(),
            "plan" => merged.plan = cycle.plan.clone(),
            "do_notes" => merged.do_notes = cycle.do_notes.clone(),
            "study_notes" => merged.study_notes = cycle.study_notes.clone(),
            "act_notes" => merged.act_notes = cycle.act_notes.clone(),
            "start_date" => merged.start_date = cycle.start_date,
            "end_date" => merged.end_date = cycle.end_date,
            "follows" => merged.follows = cycle.follows.clone(),
            "scale" => merged.scale = cycle.scale.clone(),
            _ => merged.result = cycle.result.clone(),
        }
    }
    let mut v = Violations::new();
    let f = validate(&merged, &project.name(), &mut v);
    v.finish()?;
    check_follows(&mut tx, &project, merged.number, &f).await?;
    let cycle = store::update(&mut tx, &project, merged.number, &f).await?;
    let sites = project_sites(&project);
    let kind = Kind::Updated;
    feed::record(&mut tx, COLLECTION, &cycle.name, kind, sites, &cycle).await?;
    tx.commit().await?;
    Ok(pb::UpdatePdsaCycleResponse {
        pdsa_cycle: Some(cycle),
    })
}

/// Decides a cycle (adopt, adapt or abandon): it no longer changes.
pub(crate) async fn decide(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::DecidePdsaCycleRequest,
) -> Result<pb::DecidePdsaCycleResponse, Error> {
    let pb::DecidePdsaCycleRequest {
        name,
        decision,
        act_notes,
        end_date,
        etag,
    } = req;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let (project, row) = locate_for_write(&mut tx, &ctx, "name", &name).await?;
    let mut v = Violations::new();
    let decision = v.check(required_enum::<pb::PdsaDecision>("decision", decision));
    let act_notes = v.check(optional_text("act_notes", &act_notes, 5000));
    let end = v.check(optional_date("end_date", end_date.as_ref()));
    v.finish()?;
    check_etag(&etag, row.revision, "the PDSA cycle")?;
    let end = end.or(row.end_date).unwrap_or_else(today);
    if let Some(start) = row.start_date
        && end < start
    {
        return Err(Error::invalid(
            "end_date",
            format!("{end} is before the cycle started ({start})"),
        ));
    }
    let cycle = store::decide(&mut tx, &project, row.number, decision, end, &act_notes).await?;
    let sites = project_sites(&project);
    let kind = Kind::StateChanged("decide");
    feed::record(&mut tx, COLLECTION, &cycle.name, kind, sites, &cycle).await?;
    tx.commit().await?;
    Ok(pb::DecidePdsaCycleResponse {
        pdsa_cycle: Some(cycle),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cycle_needs_a_change_an_objective_and_a_prediction() {
        let mut v = Violations::new();
        validate(
            &pb::PdsaCycle {
                change_idea: "Discharge checklist".into(),
                start_date: Some(qi_platform::convert::date(
                    NaiveDate::from_ymd_opt(2027, 3, 2).unwrap(),
                )),
                end_date: Some(qi_platform::convert::date(
                    NaiveDate::from_ymd_opt(2027, 3, 1).unwrap(),
                )),
                ..Default::default()
            },
            "sites/BAS/projects/p1",
            &mut v,
        );
        let Err(Error::InvalidArgument { violations }) = v.finish() else {
            panic!("expected violations")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "pdsa_cycle.objective",
                "pdsa_cycle.prediction",
                "pdsa_cycle.end_date"
            ]
        );
    }
}
