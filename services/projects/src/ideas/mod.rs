//! Ideas (`sites/{site}/ideas/{idea}`) and their triage: submitted → under review →
//! accepted (it becomes a project, linked both ways) | declined (with a reason) | merged
//! (into another idea of its site, or a project its site leads or takes part in). A
//! declined idea is reopened only by ReopenIdea, with a reason. Each transition is its own
//! method; any other move is FAILED_PRECONDITION.

mod filter;
mod history;
mod store;

pub(crate) use history::list as list_events;

use chrono::NaiveDate;
use qi_platform::calendar::not_future;
use qi_platform::changes::Kind;
use qi_platform::convert::{check_etag, long_text, optional_date, optional_text, required_text};
use qi_platform::extract::{self, Order};
use qi_platform::names::OwnerAccess as _;
use qi_platform::names::{self, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, Violations, idempotency};
use qi_proto::projects as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::ProjectsApi;
use crate::foreign;
use crate::stored::{Column, enum_field, unexpected};
use history::Step;
use store::Triage;

/// The collection id in idea names.
pub(crate) const COLLECTION: &str = "ideas";

crate::stored::column_enum!(IdeaState, "idea state", {
    Submitted => "submitted",
    UnderReview => "under_review",
    Accepted => "accepted",
    Declined => "declined",
    Merged => "merged",
});

/// An idea to submit, validated.
#[derive(Debug)]
struct NewIdea {
    site: SiteCode,
    id: String,
    title: String,
    description: String,
    ward: Option<String>,
    submitter: String,
    submitter_staff: Option<String>,
    theme: String,
    /// Set when loading an idea received before today.
    submit_date: Option<NaiveDate>,
    request_id: String,
}

impl NewIdea {
    /// Validates a CreateIdea request; `ctx` is whom `staff/me` names.
    fn parse(ctx: &AccessContext, req: pb::CreateIdeaRequest) -> Result<Self, Error> {
        let pb::CreateIdeaRequest {
            parent,
            idea_id,
            idea,
            request_id,
        } = req;
        let mut v = Violations::new();
        let site = v.check(crate::sites::parse_name("parent", &parent).map(Some));
        let id = v.check(names::id_or_new("idea_id", &idea_id));
        v.check(idempotency::validate_request_id(&request_id));
        let Some(idea) = idea else {
            return Err(v.missing("idea"));
        };
        let pb::Idea {
            name: _,
            title,
            description,
            ward,
            submitter,
            submitter_staff,
            theme,
            state: _,
            decline_reason: _,
            merged_into: _,
            project: _,
            reopen_reason: _,
            create_time: _,
            update_time: _,
            decision_time: _,
            etag: _,
            submit_date,
            reviewer: _,
        } = idea;
        let title = v.check(required_text("idea.title", &title, 200));
        let description = v.check(optional_text("idea.description", &description, 5000));
        let ward = v.check(ward_id(&ward, site.as_ref()));
        let submitter = v.check(required_text("idea.submitter", &submitter, 200));
        let submitter_staff = if submitter_staff.is_empty() {
            None
        } else {
            Some(v.check(foreign::person(
                ctx,
                "idea.submitter_staff",
                &submitter_staff,
            )))
        };
        let theme = v.check(optional_text("idea.theme", &theme, 100));
        let submit_date = v.check(
            optional_date("idea.submit_date", submit_date.as_ref())
                .and_then(|d| d.map(|d| not_future("idea.submit_date", d)).transpose()),
        );
        v.finish()?;
        let site = site.ok_or_else(|| Error::invalid("parent", "is required"))?;
        Ok(NewIdea {
            site,
            id,
            title,
            description,
            ward,
            submitter,
            submitter_staff,
            theme,
            submit_date,
            request_id,
        })
    }
}

/// Reads an idea's `ward` (empty: none) into the ward's id: a ward of the idea's `site`
/// (`None` when the site is itself invalid: only the ward's form is checked then).
fn ward_id(ward: &str, site: Option<&SiteCode>) -> Result<Option<String>, Error> {
    if ward.is_empty() {
        return Ok(None);
    }
    match (crate::wards::parse_name("idea.ward", ward)?, site) {
        ((ws, _), Some(s)) if &ws != s => Err(Error::invalid(
            "idea.ward",
            format!("{ward} is a ward of {ws}; an idea for {s} names a {s} ward"),
        )),
        ((_, id), _) => Ok(Some(id)),
    }
}

/// What transitions and edits need of an idea.
#[derive(Debug, Clone)]
struct IdeaRef {
    uid: Uuid,
    site: String,
    id: String,
    title: String,
    description: String,
    ward_id: Option<String>,
    theme: String,
    submitter_staff: Option<String>,
    state: String,
    revision: i64,
}

impl IdeaRef {
    fn name(&self) -> String {
        format!("sites/{}/{COLLECTION}/{}", self.site, self.id)
    }
    fn state(&self) -> Result<pb::IdeaState, Error> {
        pb::IdeaState::from_column(&self.state)
    }
}

fn parse_name(field: &str, name: &str) -> Result<(SiteCode, String), Error> {
    match names::parse_name(field, name, COLLECTION)? {
        (Owner::Site(s), id) => Ok((s, id)),
        (Owner::Trust, _) => Err(Error::invalid(field, "ideas belong to a site")),
    }
}

/// Finds an idea for a change, locking it.
async fn locate_for_write(
    conn: &mut PgConnection,
    ctx: &AccessContext,
    field: &str,
    name: &str,
) -> Result<IdeaRef, Error> {
    let (site, id) = parse_name(field, name)?;
    Owner::Site(site.clone()).check_write(ctx)?;
    store::lock(conn, &site, &id)
        .await?
        .ok_or_else(|| Error::not_found(name))
}

/// The one triage move each method makes: from which states, to which.
#[derive(Debug, Clone, Copy)]
enum Move {
    Review,
    Accept,
    Decline,
    Merge,
    Reopen,
}

impl Move {
    fn allowed_from(self, s: pb::IdeaState) -> bool {
        use pb::IdeaState as S;
        match self {
            Move::Review => s == S::Submitted,
            Move::Accept => s == S::UnderReview,
            Move::Decline | Move::Merge => matches!(s, S::Submitted | S::UnderReview),
            Move::Reopen => s == S::Declined,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Move::Review => "be reviewed (only a submitted idea can)",
            Move::Accept => "be accepted (only an idea under review can)",
            Move::Decline => "be declined (only a submitted or under-review idea can)",
            Move::Merge => "be merged (only a submitted or under-review idea can)",
            Move::Reopen => "be reopened (only a declined idea can, with ReopenIdea)",
        }
    }
}

/// Checks the etag and that the move is allowed from the idea's state.
fn check_move(idea: &IdeaRef, m: Move, given_etag: &str) -> Result<(), Error> {
    check_etag(given_etag, idea.revision, "the idea")?;
    let from = idea.state()?;
    if m.allowed_from(from) {
        Ok(())
    } else {
        Err(Error::FailedPrecondition {
            reason: "IDEA_STATE",
            message: format!(
                "{} is {}: it cannot {}",
                idea.name(),
                from.column().unwrap_or("unspecified"),
                m.verb()
            ),
        })
    }
}

/// Submits an idea at a site the caller holds.
pub(crate) async fn create(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::CreateIdeaRequest,
) -> Result<pb::CreateIdeaResponse, Error> {
    let new = NewIdea::parse(&ctx, req.clone())?;
    let owner = Owner::Site(new.site.clone());
    owner.check_create(&ctx, &api.sites)?;
    let tx = qi_platform::db::begin(&api.pool).await?;
    idempotency::once(tx, &ctx, &new.request_id, &req, async |tx| {
        if let Some(ward) = &new.ward
            && !crate::wards::store::exists(tx, &new.site, ward).await?
        {
            return Err(Error::invalid(
                "idea.ward",
                format!(
                    "{} does not exist",
                    owner.child(crate::wards::COLLECTION, ward)
                ),
            ));
        }
        // Unset: the trust's today, as every date default is.
        let submit_date = new.submit_date.unwrap_or_else(qi_platform::calendar::today);
        let uid =
            store::insert(tx, &new, submit_date)
                .await?
                .ok_or_else(|| Error::AlreadyExists {
                    name: owner.child(COLLECTION, &new.id),
                })?;
        // Its history starts with its submission, on the day it was received.
        let submitted = Step::by(&ctx, new.submit_date);
        history::record(tx, uid, "submitted", &submitted, "").await?;
        let idea = store::read(tx, uid).await?;
        let sites = Some(vec![new.site.to_string()]);
        crate::feed::record(tx, COLLECTION, &idea.name, Kind::Created, sites, &idea).await?;
        Ok(pb::CreateIdeaResponse { idea: Some(idea) })
    })
    .await
}

/// Reads an idea of a site the caller holds.
pub(crate) async fn get(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::GetIdeaRequest,
) -> Result<pb::GetIdeaResponse, Error> {
    let pb::GetIdeaRequest { name } = req;
    let (site, id) = parse_name("name", &name)?;
    Owner::Site(site.clone()).check_read(&ctx)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let idea = store::find(&mut conn, &site, &id).await?;
    Ok(pb::GetIdeaResponse {
        idea: Some(idea.ok_or_else(|| Error::not_found(&name))?),
    })
}

/// Lists ideas, newest first, by state, theme and submitter.
pub(crate) async fn list(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ListIdeasRequest,
) -> Result<pb::ListIdeasResponse, Error> {
    let pb::ListIdeasRequest {
        parent,
        state,
        theme,
        page_size,
        page_token,
        submitter,
        filter,
        order_by,
    } = req;
    let mut sites = crate::sites::list_scope(&ctx, "parent", &parent)?;
    let mut v = Violations::new();
    let mut state = v
        .check(enum_field::<pb::IdeaState>("state", state))
        .and_then(Column::column);
    let theme = v.check(optional_text("theme", &theme, 100));
    // Stored by the canonical name whichever form named them, so compared by it.
    let submitter_staff = v.check(foreign::person_filter(&ctx, "submitter", &submitter));
    let terms = v.check(filter::parse(&filter));
    let order = v.check(extract::order(&order_by));
    if state.is_some() && terms.state.is_some() {
        v.add(
            "filter",
            "`state` is given both as a field and in the filter",
        );
    }
    v.finish()?;
    state = state.or(terms.state);
    if let Some(site) = &terms.site {
        sites = Some(extract::only_site(sites, site));
    }
    let mut params = format!("{parent}|{}|{theme}", state.unwrap_or(""));
    // Only when set: a token issued before these existed still reads the same.
    for (set, value) in [
        (!submitter.is_empty(), &submitter),
        (!filter.is_empty(), &filter),
    ] {
        if set {
            params = format!("{params}|{value}");
        }
    }
    if order != Order::Default {
        params = format!("{params}|{order_by}");
    }
    let page = Page::parse(page_size, &page_token, &params)?;
    let after: Option<Uuid> = page.parsed_key(0)?;
    let after_time = order.after_time(&page)?;
    let mut conn = qi_platform::db::begin(&api.pool).await?;
    let filter = store::ListFilter {
        sites,
        state,
        theme: &theme,
        submitter: submitter_staff.as_deref(),
        updated: terms.updated,
        order,
    };
    let (ideas, next_page_token) =
        store::list(&mut conn, &filter, (after, after_time), &page).await?;
    Ok(pb::ListIdeasResponse {
        ideas,
        next_page_token,
    })
}

/// The paths UpdateIdea changes: what the submitter wrote. Who submitted it and when stay
/// as submitted (the submitter is who may edit it); the state moves by the triage methods.
const UPDATABLE: &[&str] = &["title", "description", "ward", "theme"];

/// An UpdateIdea's changes, validated: a field left `None` keeps its stored value.
#[derive(Debug, Default)]
struct Changes {
    title: Option<String>,
    description: Option<String>,
    ward: Option<Option<String>>,
    theme: Option<String>,
}

impl Changes {
    /// Reads the masked fields of `idea`, an idea of `site`.
    fn parse(
        site: &SiteCode,
        idea: &pb::Idea,
        mask: Option<&prost_types::FieldMask>,
    ) -> Result<Self, Error> {
        let pb::Idea {
            name: _,
            title,
            description,
            ward,
            submitter: _,
            submitter_staff: _,
            theme,
            state: _,
            decline_reason: _,
            merged_into: _,
            project: _,
            reopen_reason: _,
            create_time: _,
            update_time: _,
            decision_time: _,
            etag: _,
            submit_date: _,
            reviewer: _,
        } = idea;
        let paths = qi_platform::update_mask::paths(mask, UPDATABLE, |p| match p {
            "title" => !title.is_empty(),
            "description" => !description.is_empty(),
            "ward" => !ward.is_empty(),
            "theme" => !theme.is_empty(),
            _ => false,
        })?;
        let mut v = Violations::new();
        let mut c = Changes::default();
        for p in paths {
            match p {
                "title" => c.title = Some(v.check(required_text("idea.title", title, 200))),
                "description" => {
                    c.description =
                        Some(v.check(optional_text("idea.description", description, 5000)))
                }
                "ward" => c.ward = Some(v.check(ward_id(ward, Some(site)))),
                _ => c.theme = Some(v.check(optional_text("idea.theme", theme, 100))),
            }
        }
        v.finish()?;
        Ok(c)
    }

    /// `idea` with these changes made.
    fn apply(self, idea: &IdeaRef) -> store::Edit {
        store::Edit {
            title: self.title.unwrap_or_else(|| idea.title.clone()),
            description: self.description.unwrap_or_else(|| idea.description.clone()),
            ward_id: self.ward.unwrap_or_else(|| idea.ward_id.clone()),
            theme: self.theme.unwrap_or_else(|| idea.theme.clone()),
        }
    }
}

/// Whether the caller may edit `idea`: `improvement_team` (and `admin`) at its site
/// ([`locate_for_write`] checked the site), or the person who submitted it, known by the
/// employee number in their token (`PERMISSION_DENIED` naming the claim without one).
fn check_editor(ctx: &AccessContext, idea: &IdeaRef) -> Result<(), Error> {
    if ctx.has_role("improvement_team") {
        return Ok(());
    }
    let me = qi_names::staff_name(ctx.employee_for_edit("the caller to be the idea's submitter")?);
    if idea.submitter_staff.as_ref() == Some(&me) {
        Ok(())
    } else {
        Err(Error::denied(format!(
            "{me} did not submit {}: a contributor edits only the ideas they submitted",
            idea.name()
        )))
    }
}

/// Refuses an edit of an idea already decided (accepted, declined or merged).
fn require_open(idea: &IdeaRef) -> Result<(), Error> {
    match idea.state()? {
        pb::IdeaState::Submitted | pb::IdeaState::UnderReview => Ok(()),
        s @ (pb::IdeaState::Accepted
        | pb::IdeaState::Declined
        | pb::IdeaState::Merged
        | pb::IdeaState::Unspecified) => Err(Error::FailedPrecondition {
            reason: "IDEA_STATE",
            message: format!(
                "{} is {}: an idea is edited while submitted or under review (a declined one is reopened first)",
                idea.name(),
                s.column().unwrap_or("unspecified")
            ),
        }),
    }
}

/// Changes the fields in the mask of an open idea, as its submitter or the site's
/// improvement team.
pub(crate) async fn update(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::UpdateIdeaRequest,
) -> Result<pb::UpdateIdeaResponse, Error> {
    let pb::UpdateIdeaRequest { idea, update_mask } = req;
    let idea = idea.ok_or_else(|| Error::invalid("idea", "is required"))?;
    // As UpdateProject: the site, then the idea, then who may edit it, then the edit.
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let found = locate_for_write(&mut tx, &ctx, "idea.name", &idea.name).await?;
    check_editor(&ctx, &found)?;
    check_etag(&idea.etag, found.revision, "the idea")?;
    require_open(&found)?;
    let (site, _) = parse_name("idea.name", &idea.name)?;
    let changes = Changes::parse(&site, &idea, update_mask.as_ref())?;
    if let Some(Some(ward)) = &changes.ward
        && !crate::wards::store::exists(&mut tx, &site, ward).await?
    {
        return Err(Error::invalid(
            "idea.ward",
            format!(
                "{} does not exist",
                Owner::Site(site).child(crate::wards::COLLECTION, ward)
            ),
        ));
    }
    store::update(&mut tx, found.uid, &changes.apply(&found)).await?;
    let idea = store::read(&mut tx, found.uid).await?;
    let sites = Some(vec![found.site.clone()]);
    crate::feed::record(&mut tx, COLLECTION, &idea.name, Kind::Updated, sites, &idea).await?;
    tx.commit().await?;
    Ok(pb::UpdateIdeaResponse { idea: Some(idea) })
}

/// Puts a submitted idea under review.
pub(crate) async fn review(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ReviewIdeaRequest,
) -> Result<pb::ReviewIdeaResponse, Error> {
    let pb::ReviewIdeaRequest {
        name,
        etag,
        effective_date,
    } = req;
    let step = Step::parse(&ctx, "effective_date", effective_date.as_ref())?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let idea = locate_for_write(&mut tx, &ctx, "name", &name).await?;
    check_move(&idea, Move::Review, &etag)?;
    store::triage(&mut tx, idea.uid, Triage::Review, &step).await?;
    let sites = Some(vec![idea.site.clone()]);
    let idea = store::read(&mut tx, idea.uid).await?;
    let kind = Kind::StateChanged("review");
    crate::feed::record(&mut tx, COLLECTION, &idea.name, kind, sites, &idea).await?;
    tx.commit().await?;
    Ok(pb::ReviewIdeaResponse { idea: Some(idea) })
}

/// Accepts an idea under review: it becomes a project in scoping, linked both ways.
pub(crate) async fn accept(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::AcceptIdeaRequest,
) -> Result<pb::AcceptIdeaResponse, Error> {
    let mut v = Violations::new();
    let project_id = v.check(names::id_or_new("project_id", &req.project_id));
    v.check(idempotency::validate_request_id(&req.request_id));
    v.finish()?;
    let step = Step::parse(&ctx, "effective_date", req.effective_date.as_ref())?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let idea = locate_for_write(&mut tx, &ctx, "name", &req.name).await?;
    idempotency::once(tx, &ctx, &req.request_id, &req, async |tx| {
        check_move(&idea, Move::Accept, &req.etag)?;
        let site = SiteCode::parse(&idea.site).map_err(|e| unexpected("site", &e))?;
        let template = pb::Project {
            title: idea.title.clone(),
            description: idea.description.clone(),
            theme: idea.theme.clone(),
            wards: idea
                .ward_id
                .iter()
                .map(|w| format!("sites/{}/{}/{w}", idea.site, crate::wards::COLLECTION))
                .collect(),
            ..Default::default()
        };
        let mut v = Violations::new();
        let fields = crate::projects::validate(&template, &site, &api.sites, &mut v);
        v.finish()?;
        let project =
            crate::projects::store::insert(tx, &site, &project_id, &fields, None, Some(idea.uid))
                .await?;
        store::triage(
            tx,
            idea.uid,
            Triage::Accept {
                project: project.uid,
            },
            &step,
        )
        .await?;
        // The project it became, then the idea that names it.
        let made = crate::projects::store::read(tx, project.uid).await?;
        let sites = crate::feed::project_sites(&project);
        let projects = crate::projects::COLLECTION;
        crate::feed::record(tx, projects, &made.name, Kind::Created, sites, &made).await?;
        let accepted = store::read(tx, idea.uid).await?;
        let sites = Some(vec![idea.site.clone()]);
        let kind = Kind::StateChanged("accept");
        crate::feed::record(tx, COLLECTION, &accepted.name, kind, sites, &accepted).await?;
        Ok(pb::AcceptIdeaResponse {
            idea: Some(accepted),
            project: Some(made),
        })
    })
    .await
}

/// Declines a submitted or under-review idea, with a reason.
pub(crate) async fn decline(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::DeclineIdeaRequest,
) -> Result<pb::DeclineIdeaResponse, Error> {
    let pb::DeclineIdeaRequest {
        name,
        reason,
        etag,
        effective_date,
    } = req;
    let reason = long_text("reason", &reason, 1000)?;
    let step = Step::parse(&ctx, "effective_date", effective_date.as_ref())?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let idea = locate_for_write(&mut tx, &ctx, "name", &name).await?;
    check_move(&idea, Move::Decline, &etag)?;
    store::triage(
        &mut tx,
        idea.uid,
        Triage::Decline { reason: &reason },
        &step,
    )
    .await?;
    let sites = Some(vec![idea.site.clone()]);
    let idea = store::read(&mut tx, idea.uid).await?;
    let kind = Kind::StateChanged("decline");
    crate::feed::record(&mut tx, COLLECTION, &idea.name, kind, sites, &idea).await?;
    tx.commit().await?;
    Ok(pb::DeclineIdeaResponse { idea: Some(idea) })
}

/// Merges a submitted or under-review idea into another live idea of its site, or a
/// project its site leads or takes part in.
pub(crate) async fn merge(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::MergeIdeaRequest,
) -> Result<pb::MergeIdeaResponse, Error> {
    let pb::MergeIdeaRequest {
        name,
        into,
        etag,
        effective_date,
    } = req;
    let step = Step::parse(&ctx, "effective_date", effective_date.as_ref())?;
    enum Into_ {
        Idea(SiteCode, String),
        Project(crate::projects::ProjectPath),
    }
    let target = if let Ok((site, id)) = parse_name("into", &into) {
        Into_::Idea(site, id)
    } else {
        crate::projects::parse_path("into", &into, &[])
            .map(Into_::Project)
            .map_err(|_| {
                Error::invalid(
                    "into",
                    "name an idea (`sites/{site}/ideas/{idea}`) or a project (`sites/{site}/projects/{project}`)",
                )
            })?
    };
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let idea = locate_for_write(&mut tx, &ctx, "name", &name).await?;
    check_move(&idea, Move::Merge, &etag)?;
    let (merged_idea, merged_project) = match target {
        Into_::Idea(site, id) => {
            if site.as_str() != idea.site {
                return Err(Error::invalid(
                    "into",
                    format!(
                        "an idea merges into another idea of its own site ({})",
                        idea.site
                    ),
                ));
            }
            if id == idea.id {
                return Err(Error::invalid("into", "an idea cannot merge into itself"));
            }
            match store::merge_target(&mut tx, &site, &id).await? {
                None => return Err(Error::invalid("into", format!("{into} does not exist"))),
                Some((_, state)) if state == "declined" || state == "merged" => {
                    return Err(Error::invalid(
                        "into",
                        format!("{into} is {state}: merge into a live idea"),
                    ));
                }
                Some((uid, _)) => (Some(uid), None),
            }
        }
        Into_::Project(path) => {
            let lead = match &path.site {
                crate::projects::ProjectSite::Lead(s) => Some(s.as_str()),
                crate::projects::ProjectSite::Any => None,
            };
            let uid =
                crate::projects::store::find_for_site(&mut tx, &path.project, lead, &idea.site)
                    .await?
                    .ok_or_else(|| {
                        Error::invalid(
                            "into",
                            format!(
                                "{into} is not a project that {} leads or takes part in",
                                idea.site
                            ),
                        )
                    })?;
            (None, Some(uid))
        }
    };
    let merged = Triage::Merge {
        idea: merged_idea,
        project: merged_project,
    };
    store::triage(&mut tx, idea.uid, merged, &step).await?;
    let sites = Some(vec![idea.site.clone()]);
    let idea = store::read(&mut tx, idea.uid).await?;
    let kind = Kind::StateChanged("merge");
    crate::feed::record(&mut tx, COLLECTION, &idea.name, kind, sites, &idea).await?;
    tx.commit().await?;
    Ok(pb::MergeIdeaResponse { idea: Some(idea) })
}

/// Reopens a declined idea, with a reason: it is under review again.
pub(crate) async fn reopen(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::ReopenIdeaRequest,
) -> Result<pb::ReopenIdeaResponse, Error> {
    let pb::ReopenIdeaRequest {
        name,
        reason,
        etag,
        effective_date,
    } = req;
    let reason = long_text("reason", &reason, 1000)?;
    let step = Step::parse(&ctx, "effective_date", effective_date.as_ref())?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let idea = locate_for_write(&mut tx, &ctx, "name", &name).await?;
    check_move(&idea, Move::Reopen, &etag)?;
    store::triage(&mut tx, idea.uid, Triage::Reopen { reason: &reason }, &step).await?;
    let sites = Some(vec![idea.site.clone()]);
    let idea = store::read(&mut tx, idea.uid).await?;
    let kind = Kind::StateChanged("reopen");
    crate::feed::record(&mut tx, COLLECTION, &idea.name, kind, sites, &idea).await?;
    tx.commit().await?;
    Ok(pb::ReopenIdeaResponse { idea: Some(idea) })
}

/// Assigns an open idea to a member of staff to review, or to no one.
pub(crate) async fn assign_reviewer(
    api: &ProjectsApi,
    ctx: AccessContext,
    req: pb::AssignIdeaReviewerRequest,
) -> Result<pb::AssignIdeaReviewerResponse, Error> {
    let pb::AssignIdeaReviewerRequest {
        name,
        reviewer,
        etag,
    } = req;
    let reviewer = foreign::person_filter(&ctx, "reviewer", &reviewer)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let idea = locate_for_write(&mut tx, &ctx, "name", &name).await?;
    check_etag(&etag, idea.revision, "the idea")?;
    require_open(&idea)?;
    store::assign(&mut tx, idea.uid, reviewer.as_deref()).await?;
    let sites = Some(vec![idea.site.clone()]);
    let idea = store::read(&mut tx, idea.uid).await?;
    crate::feed::record(&mut tx, COLLECTION, &idea.name, Kind::Updated, sites, &idea).await?;
    tx.commit().await?;
    Ok(pb::AssignIdeaReviewerResponse { idea: Some(idea) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::caller;
    use qi_platform::convert::date;

    #[test]
    fn every_move_has_its_states() {
        use pb::IdeaState as S;
        let all = [
            S::Submitted,
            S::UnderReview,
            S::Accepted,
            S::Declined,
            S::Merged,
        ];
        let from =
            |m: Move| -> Vec<S> { all.iter().copied().filter(|s| m.allowed_from(*s)).collect() };
        assert_eq!(from(Move::Review), [S::Submitted]);
        assert_eq!(from(Move::Accept), [S::UnderReview]);
        assert_eq!(from(Move::Decline), [S::Submitted, S::UnderReview]);
        assert_eq!(from(Move::Merge), [S::Submitted, S::UnderReview]);
        assert_eq!(from(Move::Reopen), [S::Declined]);
    }

    /// An idea of BAS submitted by `staff`, in `state`.
    fn stored(staff: Option<&str>, state: &str) -> IdeaRef {
        IdeaRef {
            uid: Uuid::nil(),
            site: "BAS".into(),
            id: "i1".into(),
            title: "Letters".into(),
            description: String::new(),
            ward_id: None,
            theme: String::new(),
            submitter_staff: staff.map(str::to_owned),
            state: state.into(),
            revision: 1,
        }
    }

    fn as_role(role: &str, employee: Option<&str>) -> AccessContext {
        AccessContext {
            roles: vec![role.into()],
            ..caller(employee)
        }
    }

    #[test]
    fn the_team_edits_any_idea_and_a_contributor_only_those_they_submitted() {
        let theirs = stored(Some("staff/00123456"), "submitted");
        let nobodys = stored(None, "submitted");
        for role in ["improvement_team", "admin"] {
            let team = as_role(role, None);
            assert!(check_editor(&team, &theirs).is_ok() && check_editor(&team, &nobodys).is_ok());
        }
        let submitter = as_role("contributor", Some("00123456"));
        assert!(check_editor(&submitter, &theirs).is_ok());
        let Err(Error::PermissionDenied { message }) = check_editor(&submitter, &nobodys) else {
            panic!("an idea no staff member submitted was theirs")
        };
        assert_eq!(
            message,
            "staff/00123456 did not submit sites/BAS/ideas/i1: a contributor edits only the ideas they submitted"
        );
        let someone = as_role("contributor", Some("00654321"));
        assert!(matches!(
            check_editor(&someone, &theirs),
            Err(Error::PermissionDenied { .. })
        ));
        // Without the claim no idea can be shown to be theirs, not even their own.
        let Err(Error::PermissionDenied { message }) =
            check_editor(&as_role("contributor", None), &theirs)
        else {
            panic!("a contributor without an employee number may edit")
        };
        assert!(message.contains("no `employee_number` claim"), "{message}");
    }

    #[test]
    fn an_idea_is_edited_until_it_is_decided() {
        for open in ["submitted", "under_review"] {
            assert!(require_open(&stored(None, open)).is_ok(), "{open}");
        }
        for decided in ["accepted", "declined", "merged"] {
            let Err(Error::FailedPrecondition { reason, message }) =
                require_open(&stored(None, decided))
            else {
                panic!("a {decided} idea was edited")
            };
            assert_eq!(reason, "IDEA_STATE");
            assert!(message.starts_with(&format!("sites/BAS/ideas/i1 is {decided}:")));
        }
    }

    #[test]
    fn an_edit_names_each_bad_field_and_an_omitted_mask_takes_the_fields_set() {
        let bas = SiteCode::parse("BAS").unwrap();
        let mask = |paths: &[&str]| prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        };
        let bad = pb::Idea {
            title: " ".into(),
            ward: "sites/SOU/wards/cedar".into(),
            theme: "x".repeat(101),
            ..Default::default()
        };
        let Err(Error::InvalidArgument { violations }) =
            Changes::parse(&bas, &bad, Some(&mask(&["*"])))
        else {
            panic!("expected invalid argument")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["idea.title", "idea.ward", "idea.theme"]);
        for path in [
            "state",
            "submitter_staff",
            "submitter",
            "submit_date",
            "name",
        ] {
            let Err(Error::InvalidArgument { violations }) =
                Changes::parse(&bas, &bad, Some(&mask(&[path])))
            else {
                panic!("{path} was updatable")
            };
            assert_eq!(violations[0].field, "update_mask", "{path}");
        }
        // No mask: what is set. A masked empty field clears it (all but the title).
        let set = pb::Idea {
            theme: "Flow".into(),
            ward: "sites/BAS/wards/cedar".into(),
            ..Default::default()
        };
        let c = Changes::parse(&bas, &set, None).unwrap();
        assert_eq!(
            (c.title, c.description, c.ward, c.theme),
            (None, None, Some(Some("cedar".into())), Some("Flow".into()))
        );
        let c =
            Changes::parse(&bas, &pb::Idea::default(), Some(&mask(&["ward", "theme"]))).unwrap();
        let edit = c.apply(&IdeaRef {
            ward_id: Some("oak".into()),
            theme: "Old".into(),
            ..stored(None, "submitted")
        });
        assert_eq!(
            (edit.title.as_str(), edit.ward_id, edit.theme.as_str()),
            ("Letters", None, "")
        );
    }

    #[test]
    fn texts_may_span_lines_but_not_hold_other_controls() {
        assert_eq!(optional_text("t", " a\nb ", 10).unwrap(), "a\nb");
        assert!(optional_text("t", "a\u{7}", 10).is_err());
        assert!(long_text("t", "  ", 10).is_err());
    }

    #[test]
    fn an_idea_names_a_ward_of_its_own_site() {
        let req = pb::CreateIdeaRequest {
            parent: "sites/BAS".into(),
            idea: Some(pb::Idea {
                title: "Earlier discharge letters".into(),
                submitter: "A. Nurse".into(),
                ward: "sites/SOU/wards/cedar".into(),
                submitter_staff: "sites/BAS/staff/x".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let Err(Error::InvalidArgument { violations }) = NewIdea::parse(&caller(None), req) else {
            panic!("expected invalid argument")
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["idea.ward", "idea.submitter_staff"]);
    }

    #[test]
    fn a_submitter_is_stored_by_the_canonical_name_whatever_form_names_them() {
        let req = |staff: &str| pb::CreateIdeaRequest {
            parent: "sites/BAS".into(),
            idea: Some(pb::Idea {
                title: "Earlier discharge letters".into(),
                submitter: "A. Nurse".into(),
                submitter_staff: staff.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let stored = |ctx: &AccessContext, staff: &str| {
            NewIdea::parse(ctx, req(staff)).map(|i| i.submitter_staff)
        };
        let me = caller(Some("00123456"));
        for form in ["sites/SOU/staff/12345678", "staff/12345678"] {
            assert_eq!(
                stored(&me, form).unwrap().as_deref(),
                Some("staff/12345678")
            );
        }
        assert_eq!(
            stored(&me, "staff/me").unwrap().as_deref(),
            Some("staff/00123456")
        );
        assert_eq!(stored(&me, "").unwrap(), None);
        assert!(matches!(
            stored(&caller(None), "staff/me"),
            Err(Error::FailedPrecondition { .. })
        ));
    }

    #[test]
    fn an_idea_may_be_dated_in_the_past_but_not_the_future() {
        let req = |d: NaiveDate| pb::CreateIdeaRequest {
            parent: "sites/BAS".into(),
            idea: Some(pb::Idea {
                title: "Earlier discharge letters".into(),
                submitter: "A. Nurse".into(),
                submit_date: Some(date(d)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let past = NaiveDate::from_ymd_opt(2021, 6, 1).unwrap();
        assert_eq!(
            NewIdea::parse(&caller(None), req(past))
                .unwrap()
                .submit_date,
            Some(past)
        );
        let tomorrow = qi_platform::calendar::today() + chrono::Days::new(1);
        let Err(Error::InvalidArgument { violations }) =
            NewIdea::parse(&caller(None), req(tomorrow))
        else {
            panic!("expected invalid argument")
        };
        assert_eq!(violations[0].field, "idea.submit_date");
    }
}
