//! The typed projections the answers read: for each mirrored message, the few fields an
//! answer needs, in indexed tables (see the migration `…_projections.sql`). A batch's
//! projections are written in the transaction that mirrors it, so they are exactly as
//! current as the mirror, and a resource gone from the mirror is gone from them.
//!
//! Site codes are stored bare (`BAS`, not `sites/BAS`), and `''` stands for none (a
//! trust-wide cohort, the trust's own measurements).

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use prost::Message as _;
use qi_platform::convert::calendar_date;
use qi_proto::{metrics as mpb, projects as ppb, training as tpb};
use sqlx::PgConnection;

use crate::intake::Service;

/// The site code a resource name is rooted at (`sites/BAS/…` → `BAS`); `''` for a
/// trust-wide name.
pub(crate) fn site_of(name: &str) -> &str {
    name.strip_prefix("sites/")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("")
}

/// A site as the contracts write it (`sites/BAS`) as its bare code.
fn code(site: &str) -> String {
    site.strip_prefix("sites/").unwrap_or(site).to_owned()
}

fn day(d: Option<&qi_proto::google::r#type::Date>) -> Option<NaiveDate> {
    d.and_then(calendar_date)
}

fn instant(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(qi_platform::convert::instant)
}

/// What joins a list into one text for a set-based write (`chr(31)` in SQL): the ASCII unit
/// separator, which no name or site code holds.
pub(crate) const LIST_SEPARATOR: &str = "\u{1f}";

/// A batch's projections: the rows to write and the names to remove, per table.
#[derive(Debug, Default)]
pub(crate) struct Projections {
    /// Names gone from the mirror (deleted or hidden), of every table of the service.
    gone: Vec<String>,
    staff: Vec<tpb::Staff>,
    cohorts: Vec<tpb::Cohort>,
    completions: Vec<tpb::Completion>,
    projects: Vec<ppb::Project>,
    members: Vec<ppb::TeamMember>,
    measures: Vec<ppb::Measure>,
    programmes: Vec<ppb::Programme>,
    scores: Vec<ppb::ProgressScore>,
    cycles: Vec<ppb::PdsaCycle>,
    wards: Vec<ppb::Ward>,
    ideas: Vec<ppb::Idea>,
    waves: Vec<ppb::Wave>,
    enrolments: Vec<ppb::WardEnrolment>,
    metrics: Vec<mpb::Metric>,
    measurements: Vec<mpb::Measurement>,
    rebase_points: Vec<mpb::RebasePoint>,
}

impl Projections {
    /// Takes in the resource of one change of `service` (a message as the feed sent it).
    /// Collections no answer reads are left to the mirror.
    pub(crate) fn add(&mut self, service: Service, message: &Bytes) -> anyhow::Result<()> {
        match service {
            Service::Training => {
                use tpb::watch_changes_response::Resource;
                let change = tpb::WatchChangesResponse::decode(message.clone())
                    .context("an undecodable training change")?;
                match change.resource {
                    Some(Resource::Staff(s)) => self.staff.push(s),
                    Some(Resource::Cohort(c)) => self.cohorts.push(c),
                    Some(Resource::Completion(c)) => self.completions.push(c),
                    _ => {}
                }
            }
            Service::Projects => {
                use ppb::watch_changes_response::Resource;
                let change = ppb::WatchChangesResponse::decode(message.clone())
                    .context("an undecodable projects change")?;
                match change.resource {
                    Some(Resource::Project(p)) => self.projects.push(p),
                    // A patient partner is not staff: no answer counts them.
                    Some(Resource::TeamMember(m)) if !m.staff.is_empty() => self.members.push(m),
                    Some(Resource::Measure(m)) => self.measures.push(m),
                    Some(Resource::Programme(p)) => self.programmes.push(p),
                    Some(Resource::ProgressScore(p)) => self.scores.push(p),
                    Some(Resource::PdsaCycle(c)) => self.cycles.push(c),
                    Some(Resource::Ward(w)) => self.wards.push(w),
                    Some(Resource::Idea(i)) => self.ideas.push(i),
                    Some(Resource::Wave(w)) => self.waves.push(w),
                    Some(Resource::WardEnrolment(e)) => self.enrolments.push(e),
                    _ => {}
                }
            }
            Service::Metrics => {
                use mpb::watch_changes_response::Resource;
                let change = mpb::WatchChangesResponse::decode(message.clone())
                    .context("an undecodable metrics change")?;
                match change.resource {
                    Some(Resource::Metric(m)) => self.metrics.push(m),
                    Some(Resource::Measurement(m)) => self.measurements.push(m),
                    Some(Resource::RebasePoint(r)) => self.rebase_points.push(r),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Notes a resource gone from the mirror.
    pub(crate) fn remove(&mut self, name: String) {
        self.gone.push(name);
    }

    /// Writes the batch's projections of `service` in `conn`'s transaction.
    pub(crate) async fn write(
        self,
        conn: &mut PgConnection,
        service: Service,
    ) -> anyhow::Result<()> {
        self.forget(conn, service).await?;
        self.write_training(conn).await?;
        self.write_projects(conn).await?;
        self.write_metrics(conn).await
    }

    async fn forget(&self, conn: &mut PgConnection, service: Service) -> anyhow::Result<()> {
        if self.gone.is_empty() {
            return Ok(());
        }
        let gone = &self.gone;
        match service {
            Service::Training => {
                sqlx::query!("DELETE FROM staff WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM cohort WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM completion WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
            }
            Service::Projects => {
                sqlx::query!("DELETE FROM project WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM team_member WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM measure WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM programme WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM progress_score WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM pdsa_cycle WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM ward WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM idea WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM wave WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM ward_enrolment WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
            }
            Service::Metrics => {
                sqlx::query!("DELETE FROM metric WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM measurement WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
                sqlx::query!("DELETE FROM rebase_point WHERE name = ANY($1)", gone)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Ok(())
    }

    async fn write_training(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        if !self.staff.is_empty() {
            let s = &self.staff;
            let name: Vec<&str> = s.iter().map(|p| p.name.as_str()).collect();
            let display: Vec<String> = s
                .iter()
                .map(|p| format!("{} {}", p.forename, p.surname).trim().to_owned())
                .collect();
            let site: Vec<String> = s.iter().map(|p| code(&p.site)).collect();
            let ward: Vec<&str> = s.iter().map(|p| p.ward.as_str()).collect();
            let department: Vec<&str> = s.iter().map(|p| p.department.as_str()).collect();
            let group: Vec<&str> = s.iter().map(|p| p.staff_group.as_str()).collect();
            let active: Vec<bool> = s.iter().map(|p| p.active).collect();
            sqlx::query!(
                "INSERT INTO staff (name, display_name, site, ward, department, staff_group, active)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[],
                                      $5::text[], $6::text[], $7::bool[])
                 ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name,
                     site = excluded.site, ward = excluded.ward,
                     department = excluded.department, staff_group = excluded.staff_group,
                     active = excluded.active",
                &name as &[&str],
                &display,
                &site,
                &ward as &[&str],
                &department as &[&str],
                &group as &[&str],
                &active,
            )
            .execute(&mut *conn)
            .await?;
        }
        if !self.cohorts.is_empty() {
            let c = &self.cohorts;
            let name: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
            let site: Vec<&str> = c.iter().map(|c| site_of(&c.name)).collect();
            let course: Vec<&str> = c.iter().map(|c| c.course.as_str()).collect();
            let display: Vec<&str> = c.iter().map(|c| c.display_name.as_str()).collect();
            let start: Vec<Option<NaiveDate>> =
                c.iter().map(|c| day(c.start_date.as_ref())).collect();
            sqlx::query!(
                "INSERT INTO cohort (name, site, course, display_name, start_date)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::date[])
                 ON CONFLICT (name) DO UPDATE SET site = excluded.site, course = excluded.course,
                     display_name = excluded.display_name, start_date = excluded.start_date",
                &name as &[&str],
                &site as &[&str],
                &course as &[&str],
                &display as &[&str],
                &start as &[Option<NaiveDate>],
            )
            .execute(&mut *conn)
            .await?;
        }
        // A completion without a readable date cannot be placed in time: not projected.
        let completions: Vec<(&tpb::Completion, NaiveDate)> = self
            .completions
            .iter()
            .filter_map(|c| Some((c, day(c.completion_date.as_ref())?)))
            .collect();
        if !completions.is_empty() {
            let c = &completions;
            let name: Vec<&str> = c.iter().map(|(c, _)| c.name.as_str()).collect();
            let staff: Vec<&str> = c.iter().map(|(c, _)| c.staff.as_str()).collect();
            let display: Vec<&str> = c
                .iter()
                .map(|(c, _)| c.staff_display_name.as_str())
                .collect();
            let course: Vec<&str> = c.iter().map(|(c, _)| c.course.as_str()).collect();
            let cohort: Vec<&str> = c.iter().map(|(c, _)| c.cohort.as_str()).collect();
            let on: Vec<NaiveDate> = c.iter().map(|(_, d)| *d).collect();
            let expiry: Vec<Option<NaiveDate>> =
                c.iter().map(|(c, _)| day(c.expiry_date.as_ref())).collect();
            sqlx::query!(
                "INSERT INTO completion
                     (name, staff, display_name, course, cohort, completion_date, expiry_date)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                      $6::date[], $7::date[])
                 ON CONFLICT (name) DO UPDATE SET staff = excluded.staff,
                     display_name = excluded.display_name, course = excluded.course,
                     cohort = excluded.cohort, completion_date = excluded.completion_date,
                     expiry_date = excluded.expiry_date",
                &name as &[&str],
                &staff as &[&str],
                &display as &[&str],
                &course as &[&str],
                &cohort as &[&str],
                &on,
                &expiry as &[Option<NaiveDate>],
            )
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn write_projects(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        if !self.projects.is_empty() {
            let p = &self.projects;
            // Each project's sites and wards travel as one text, joined by the unit separator
            // (names never hold it), so the whole batch is one statement.
            let name: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
            let title: Vec<&str> = p.iter().map(|p| p.title.as_str()).collect();
            let sites: Vec<String> = p
                .iter()
                .map(|p| {
                    std::iter::once(site_of(&p.name).to_owned())
                        .chain(p.participating_sites.iter().map(|s| code(s)))
                        .collect::<Vec<_>>()
                        .join(LIST_SEPARATOR)
                })
                .collect();
            let wards: Vec<String> = p.iter().map(|p| p.wards.join(LIST_SEPARATOR)).collect();
            let state: Vec<i32> = p.iter().map(|p| p.state).collect();
            let start: Vec<Option<NaiveDate>> =
                p.iter().map(|p| day(p.start_date.as_ref())).collect();
            let end: Vec<Option<NaiveDate>> = p.iter().map(|p| day(p.end_date.as_ref())).collect();
            let score: Vec<Option<f64>> = p
                .iter()
                .map(|p| (p.progress_score > 0.0).then_some(p.progress_score))
                .collect();
            let programme: Vec<&str> = p.iter().map(|p| p.programme.as_str()).collect();
            let cohort: Vec<&str> = p.iter().map(|p| p.cohort.as_str()).collect();
            let involvement: Vec<i32> = p.iter().map(|p| p.patient_involvement).collect();
            let partners: Vec<i32> = p.iter().map(|p| p.patient_partner_count).collect();
            sqlx::query!(
                "INSERT INTO project (name, title, sites, wards, state, start_date, end_date,
                                      progress_score, programme, cohort, patient_involvement,
                                      patient_partners)
                 SELECT n, t, string_to_array(s, chr(31)), string_to_array(w, chr(31)),
                        st, sd, ed, ps, pr, co, pi, pp
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
                             $6::date[], $7::date[], $8::float8[], $9::text[], $10::text[],
                             $11::int[], $12::int[])
                      AS u(n, t, s, w, st, sd, ed, ps, pr, co, pi, pp)
                 ON CONFLICT (name) DO UPDATE SET title = excluded.title, sites = excluded.sites,
                     wards = excluded.wards, state = excluded.state,
                     start_date = excluded.start_date, end_date = excluded.end_date,
                     progress_score = excluded.progress_score, programme = excluded.programme,
                     cohort = excluded.cohort, patient_involvement = excluded.patient_involvement,
                     patient_partners = excluded.patient_partners",
                &name as &[&str],
                &title as &[&str],
                &sites,
                &wards,
                &state,
                &start as &[Option<NaiveDate>],
                &end as &[Option<NaiveDate>],
                &score as &[Option<f64>],
                &programme as &[&str],
                &cohort as &[&str],
                &involvement,
                &partners,
            )
            .execute(&mut *conn)
            .await?;
        }
        if !self.members.is_empty() {
            let m = &self.members;
            let name: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
            let project: Vec<&str> = m
                .iter()
                .map(|m| parent_of(&m.name, "/teamMembers/"))
                .collect();
            let staff: Vec<&str> = m.iter().map(|m| m.staff.as_str()).collect();
            let role: Vec<i32> = m.iter().map(|m| m.role).collect();
            let created: Vec<DateTime<Utc>> = m
                .iter()
                .map(|m| instant(m.create_time.as_ref()).unwrap_or_else(Utc::now))
                .collect();
            sqlx::query!(
                "INSERT INTO team_member (name, project, staff, role, create_time)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[],
                                      $5::timestamptz[])
                 ON CONFLICT (name) DO UPDATE SET project = excluded.project,
                     staff = excluded.staff, role = excluded.role,
                     create_time = excluded.create_time",
                &name as &[&str],
                &project as &[&str],
                &staff as &[&str],
                &role,
                &created,
            )
            .execute(&mut *conn)
            .await?;
        }
        if !self.measures.is_empty() {
            let m = &self.measures;
            let name: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
            let project: Vec<&str> = m.iter().map(|m| parent_of(&m.name, "/measures/")).collect();
            let metric: Vec<&str> = m.iter().map(|m| m.metric.as_str()).collect();
            let kind: Vec<i32> = m.iter().map(|m| m.kind).collect();
            sqlx::query!(
                "INSERT INTO measure (name, project, metric, kind)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[])
                 ON CONFLICT (name) DO UPDATE SET project = excluded.project,
                     metric = excluded.metric, kind = excluded.kind",
                &name as &[&str],
                &project as &[&str],
                &metric as &[&str],
                &kind,
            )
            .execute(&mut *conn)
            .await?;
        }
        if !self.programmes.is_empty() {
            let p = &self.programmes;
            let name: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
            let display: Vec<&str> = p.iter().map(|p| p.display_name.as_str()).collect();
            let cohort: Vec<&str> = p.iter().map(|p| p.cohort.as_str()).collect();
            let kind: Vec<i32> = p.iter().map(|p| p.kind).collect();
            let per_wave: Vec<i32> = p
                .iter()
                .map(|p| p.wave_plan.as_ref().map_or(0, |w| w.wards_per_wave))
                .collect();
            sqlx::query!(
                "INSERT INTO programme (name, display_name, cohort, kind, wards_per_wave)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[], $5::int[])
                 ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name,
                     cohort = excluded.cohort, kind = excluded.kind,
                     wards_per_wave = excluded.wards_per_wave",
                &name as &[&str],
                &display as &[&str],
                &cohort as &[&str],
                &kind,
                &per_wave,
            )
            .execute(&mut *conn)
            .await?;
        }
        // A score without a readable date says nothing of when: not projected.
        let scores: Vec<(&ppb::ProgressScore, NaiveDate)> = self
            .scores
            .iter()
            .filter_map(|p| Some((p, day(p.assessed_date.as_ref())?)))
            .collect();
        if !scores.is_empty() {
            let name: Vec<&str> = scores.iter().map(|(p, _)| p.name.as_str()).collect();
            let project: Vec<&str> = scores
                .iter()
                .map(|(p, _)| parent_of(&p.name, "/progressScores/"))
                .collect();
            let assessed: Vec<NaiveDate> = scores.iter().map(|(_, d)| *d).collect();
            sqlx::query!(
                "INSERT INTO progress_score (name, project, assessed_date)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::date[])
                 ON CONFLICT (name) DO UPDATE SET project = excluded.project,
                     assessed_date = excluded.assessed_date",
                &name as &[&str],
                &project as &[&str],
                &assessed,
            )
            .execute(&mut *conn)
            .await?;
        }
        if !self.cycles.is_empty() {
            let c = &self.cycles;
            let name: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
            let project: Vec<&str> = c
                .iter()
                .map(|c| parent_of(&c.name, "/pdsaCycles/"))
                .collect();
            let number: Vec<i32> = c.iter().map(|c| c.number).collect();
            let end: Vec<Option<NaiveDate>> = c.iter().map(|c| day(c.end_date.as_ref())).collect();
            let decision: Vec<i32> = c.iter().map(|c| c.decision).collect();
            let start: Vec<Option<NaiveDate>> =
                c.iter().map(|c| day(c.start_date.as_ref())).collect();
            let idea: Vec<&str> = c.iter().map(|c| c.change_idea.as_str()).collect();
            sqlx::query!(
                "INSERT INTO pdsa_cycle (name, project, number, end_date, decision, start_date,
                                         change_idea)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::date[], $5::int[],
                                      $6::date[], $7::text[])
                 ON CONFLICT (name) DO UPDATE SET project = excluded.project,
                     number = excluded.number, end_date = excluded.end_date,
                     decision = excluded.decision, start_date = excluded.start_date,
                     change_idea = excluded.change_idea",
                &name as &[&str],
                &project as &[&str],
                &number,
                &end as &[Option<NaiveDate>],
                &decision,
                &start as &[Option<NaiveDate>],
                &idea as &[&str],
            )
            .execute(&mut *conn)
            .await?;
        }
        self.write_ward_programmes(conn).await
    }

    /// Wards, ideas (for their ward), and ward programmes' waves and enrolments.
    async fn write_ward_programmes(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        if !self.wards.is_empty() {
            let w = &self.wards;
            let name: Vec<&str> = w.iter().map(|w| w.name.as_str()).collect();
            let site: Vec<&str> = w.iter().map(|w| site_of(&w.name)).collect();
            let display: Vec<&str> = w.iter().map(|w| w.display_name.as_str()).collect();
            sqlx::query!(
                "INSERT INTO ward (name, site, display_name)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
                 ON CONFLICT (name) DO UPDATE SET site = excluded.site,
                     display_name = excluded.display_name",
                &name as &[&str],
                &site as &[&str],
                &display as &[&str],
            )
            .execute(&mut *conn)
            .await?;
        }
        if !self.ideas.is_empty() {
            let i = &self.ideas;
            let name: Vec<&str> = i.iter().map(|i| i.name.as_str()).collect();
            let ward: Vec<&str> = i.iter().map(|i| i.ward.as_str()).collect();
            let state: Vec<i32> = i.iter().map(|i| i.state).collect();
            sqlx::query!(
                "INSERT INTO idea (name, ward, state)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[])
                 ON CONFLICT (name) DO UPDATE SET ward = excluded.ward, state = excluded.state",
                &name as &[&str],
                &ward as &[&str],
                &state,
            )
            .execute(&mut *conn)
            .await?;
        }
        // A wave without a readable start cannot be placed in the plan: not projected.
        let waves: Vec<(&ppb::Wave, NaiveDate)> = self
            .waves
            .iter()
            .filter_map(|w| Some((w, day(w.start_date.as_ref())?)))
            .collect();
        if !waves.is_empty() {
            let name: Vec<&str> = waves.iter().map(|(w, _)| w.name.as_str()).collect();
            let programme: Vec<&str> = waves
                .iter()
                .map(|(w, _)| parent_of(&w.name, "/waves/"))
                .collect();
            let number: Vec<i32> = waves.iter().map(|(w, _)| w.number).collect();
            let start: Vec<NaiveDate> = waves.iter().map(|(_, d)| *d).collect();
            sqlx::query!(
                "INSERT INTO wave (name, programme, number, start_date)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int[], $4::date[])
                 ON CONFLICT (name) DO UPDATE SET programme = excluded.programme,
                     number = excluded.number, start_date = excluded.start_date",
                &name as &[&str],
                &programme as &[&str],
                &number,
                &start,
            )
            .execute(&mut *conn)
            .await?;
        }
        if !self.enrolments.is_empty() {
            let e = &self.enrolments;
            let name: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
            let programme: Vec<&str> = e
                .iter()
                .map(|e| parent_of(&e.name, "/wardEnrolments/"))
                .collect();
            let ward: Vec<&str> = e.iter().map(|e| e.ward.as_str()).collect();
            let stage: Vec<i32> = e.iter().map(|e| e.stage).collect();
            sqlx::query!(
                "INSERT INTO ward_enrolment (name, programme, ward, stage)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int[])
                 ON CONFLICT (name) DO UPDATE SET programme = excluded.programme,
                     ward = excluded.ward, stage = excluded.stage",
                &name as &[&str],
                &programme as &[&str],
                &ward as &[&str],
                &stage,
            )
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn write_metrics(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        if !self.metrics.is_empty() {
            let m = &self.metrics;
            let name: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
            let display: Vec<&str> = m.iter().map(|m| m.display_name.as_str()).collect();
            let kind: Vec<i32> = m.iter().map(|m| m.kind).collect();
            let direction: Vec<i32> = m.iter().map(|m| m.improvement_direction).collect();
            let target: Vec<Option<f64>> = m.iter().map(|m| m.target).collect();
            let value_type: Vec<i32> = m.iter().map(|m| m.value_type).collect();
            let rate_per: Vec<f64> = m.iter().map(|m| m.rate_per).collect();
            let frequency: Vec<i32> = m.iter().map(|m| m.frequency).collect();
            let ward: Vec<&str> = m.iter().map(|m| m.ward.as_str()).collect();
            // An int[] per metric travels as one text of codes, split in SQL.
            let dimensions: Vec<String> = m
                .iter()
                .map(|m| {
                    let codes: Vec<String> = m.dimensions.iter().map(i32::to_string).collect();
                    codes.join(LIST_SEPARATOR)
                })
                .collect();
            sqlx::query!(
                "INSERT INTO metric (name, display_name, kind, direction, target, value_type,
                                     rate_per, frequency, ward, dimensions)
                 SELECT n, d, k, di, t, vt, rp, f, w, string_to_array(dm, chr(31))::int[]
                 FROM UNNEST($1::text[], $2::text[], $3::int[], $4::int[], $5::float8[],
                             $6::int[], $7::float8[], $8::int[], $9::text[], $10::text[])
                      AS u(n, d, k, di, t, vt, rp, f, w, dm)
                 ON CONFLICT (name) DO UPDATE SET display_name = excluded.display_name,
                     kind = excluded.kind, direction = excluded.direction,
                     target = excluded.target, value_type = excluded.value_type,
                     rate_per = excluded.rate_per, frequency = excluded.frequency,
                     ward = excluded.ward, dimensions = excluded.dimensions",
                &name as &[&str],
                &display as &[&str],
                &kind,
                &direction,
                &target as &[Option<f64>],
                &value_type,
                &rate_per,
                &frequency,
                &ward as &[&str],
                &dimensions,
            )
            .execute(&mut *conn)
            .await?;
        }
        // A measurement without a readable period cannot be charted: not projected.
        let measurements: Vec<(&mpb::Measurement, NaiveDate)> = self
            .measurements
            .iter()
            .filter_map(|m| Some((m, day(m.period.as_ref())?)))
            .collect();
        if !measurements.is_empty() {
            let m = &measurements;
            let name: Vec<&str> = m.iter().map(|(m, _)| m.name.as_str()).collect();
            let metric: Vec<&str> = m
                .iter()
                .map(|(m, _)| parent_of(&m.name, "/measurements/"))
                .collect();
            let period: Vec<NaiveDate> = m.iter().map(|(_, p)| *p).collect();
            let site: Vec<String> = m.iter().map(|(m, _)| code(&m.site)).collect();
            let ward: Vec<&str> = m.iter().map(|(m, _)| m.ward.as_str()).collect();
            let value: Vec<Option<f64>> = m.iter().map(|(m, _)| m.value).collect();
            let numerator: Vec<Option<f64>> = m.iter().map(|(m, _)| m.numerator).collect();
            let denominator: Vec<Option<f64>> = m.iter().map(|(m, _)| m.denominator).collect();
            // 0 is "not given": the measurement weighs 1.
            let count: Vec<Option<i64>> = m
                .iter()
                .map(|(m, _)| (m.count != 0).then_some(m.count))
                .collect();
            let stratum = |label: fn(&mpb::Stratum) -> &str| -> Vec<&str> {
                m.iter()
                    .map(|(m, _)| m.stratum.as_ref().map_or("", label))
                    .collect()
            };
            let imd = stratum(|s| &s.imd_quintile);
            let ethnicity = stratum(|s| &s.ethnic_category);
            let age = stratum(|s| &s.age_band);
            let sex = stratum(|s| &s.sex);
            sqlx::query!(
                "INSERT INTO measurement (name, metric, period, site, ward, value, numerator,
                                          denominator, count, imd, ethnicity, age_band, sex)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::date[], $4::text[], $5::text[],
                                      $6::float8[], $7::float8[], $8::float8[], $9::int8[],
                                      $10::text[], $11::text[], $12::text[], $13::text[])
                 ON CONFLICT (name) DO UPDATE SET metric = excluded.metric,
                     period = excluded.period, site = excluded.site, ward = excluded.ward,
                     value = excluded.value, numerator = excluded.numerator,
                     denominator = excluded.denominator, count = excluded.count,
                     imd = excluded.imd, ethnicity = excluded.ethnicity,
                     age_band = excluded.age_band, sex = excluded.sex",
                &name as &[&str],
                &metric as &[&str],
                &period,
                &site,
                &ward as &[&str],
                &value as &[Option<f64>],
                &numerator as &[Option<f64>],
                &denominator as &[Option<f64>],
                &count as &[Option<i64>],
                &imd as &[&str],
                &ethnicity as &[&str],
                &age as &[&str],
                &sex as &[&str],
            )
            .execute(&mut *conn)
            .await?;
        }
        let points: Vec<(&mpb::RebasePoint, NaiveDate)> = self
            .rebase_points
            .iter()
            .filter_map(|r| Some((r, day(r.period.as_ref())?)))
            .collect();
        if !points.is_empty() {
            let name: Vec<&str> = points.iter().map(|(r, _)| r.name.as_str()).collect();
            let metric: Vec<&str> = points
                .iter()
                .map(|(r, _)| parent_of(&r.name, "/rebasePoints/"))
                .collect();
            let period: Vec<NaiveDate> = points.iter().map(|(_, p)| *p).collect();
            sqlx::query!(
                "INSERT INTO rebase_point (name, metric, period)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::date[])
                 ON CONFLICT (name) DO UPDATE SET metric = excluded.metric,
                     period = excluded.period",
                &name as &[&str],
                &metric as &[&str],
                &period,
            )
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// The parent of a child resource's name: what comes before `/{collection}/`.
fn parent_of<'a>(name: &'a str, collection: &str) -> &'a str {
    name.rfind(collection).map_or("", |i| &name[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_give_their_site_and_parent() {
        assert_eq!(site_of("sites/BAS/cohorts/x"), "BAS");
        assert_eq!(site_of("trust/cohorts/x"), "");
        assert_eq!(site_of("sites/"), "");
        assert_eq!(code("sites/SOU"), "SOU");
        assert_eq!(
            parent_of("sites/BAS/projects/p/teamMembers/m", "/teamMembers/"),
            "sites/BAS/projects/p"
        );
        assert_eq!(
            parent_of("trust/metrics/los/measurements/1", "/measurements/"),
            "trust/metrics/los"
        );
        assert_eq!(parent_of("odd", "/measures/"), "");
    }
}
