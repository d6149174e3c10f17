//! `qi insights rebuild`: the read model dropped and built again from the services' current
//! state, so a rebuild never depends on how long the feeds keep their history.
//!
//! 1. Each feed's current cursor: a stream opened at "now" answers with a CHECKPOINT at
//!    once (its backlog is empty).
//! 2. Each collection the answers read, through the service's own List RPCs, called
//!    straight with a trust-wide context the read model signs (`internal:{name}`).
//! 3. In one transaction: everything emptied (DELETE: readers answer from the old model
//!    until it commits), the lists written as the feeds would have
//!    delivered them, and each feed's cursor set to the one taken first. The intake then
//!    follows from there; a change made while the lists were read comes again, and applying
//!    a resource's latest state twice changes nothing.
//!
//! A running intake is not stopped: its next batch finds the stored cursor moved and starts
//! again from the new one (the cursor guard of [`crate::intake`]).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::Context as _;
use bytes::Bytes;
use chrono::Utc;
use qi_platform::convert::timestamp;
use qi_platform::follow;
use qi_proto::common::ChangeKind;
use qi_proto::metrics::metric_service_client::MetricServiceClient;
use qi_proto::projects::project_service_client::ProjectServiceClient;
use qi_proto::training::training_service_client::TrainingServiceClient;
use qi_proto::{metrics as mpb, projects as ppb, training as tpb};
use tonic::transport::Channel;

use crate::intake::{Intake, Latest, Service};

/// What a rebuild took in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rebuilt {
    /// Resources written, by service.
    pub resources: Vec<(&'static str, usize)>,
    /// How long it took, in milliseconds.
    pub millis: u128,
}

/// What a rebuild empties: the cursors, the mirror and every projection.
const EMPTIED: [&str; 18] = [
    "DELETE FROM feed",
    "DELETE FROM resource",
    "DELETE FROM staff",
    "DELETE FROM cohort",
    "DELETE FROM completion",
    "DELETE FROM project",
    "DELETE FROM team_member",
    "DELETE FROM measure",
    "DELETE FROM programme",
    "DELETE FROM progress_score",
    "DELETE FROM pdsa_cycle",
    "DELETE FROM ward",
    "DELETE FROM idea",
    "DELETE FROM wave",
    "DELETE FROM ward_enrolment",
    "DELETE FROM metric",
    "DELETE FROM measurement",
    "DELETE FROM rebase_point",
];

/// The most items a List page may hold (the services coerce more to this).
const PAGE: i32 = 500;

/// Every page of a List RPC: `$call` is `client.method`, `$path` its full method path,
/// `$req` the first page's request, `$items` the response's repeated field.
macro_rules! every {
    ($intake:expr, $client:expr, $method:ident, $path:expr, $req:expr, $items:ident) => {{
        let mut out = Vec::new();
        let mut req = $req;
        req.page_size = PAGE;
        loop {
            let page = $client
                .$method($intake.signed(req.clone(), $path)?)
                .await
                .with_context(|| format!("{} {}", $path, req.parent))?
                .into_inner();
            out.extend(page.$items);
            if page.next_page_token.is_empty() {
                break;
            }
            req.page_token = page.next_page_token;
        }
        out
    }};
}

/// A resource as its feed would carry it, made from a List's item.
fn message<M: prost::Message>(m: M) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

/// A List's `$item` as the feed of contract `$pb` would carry it, created, in collection
/// `$collection` under the oneof's `$variant`: (its name, its collection, the message).
macro_rules! listed {
    ($pb:ident, $collection:literal, $variant:ident, $item:expr) => {{
        let item = $item;
        let name = item.name.clone();
        let m = $pb::WatchChangesResponse {
            resource_name: name.clone(),
            collection: $collection.to_owned(),
            kind: ChangeKind::Created as i32,
            commit_time: Some(timestamp(Utc::now())),
            resource: Some($pb::watch_changes_response::Resource::$variant(item)),
            ..Default::default()
        };
        (name, $collection, message(m))
    }};
}

impl Intake {
    /// A request carrying a context signed for `path`.
    fn signed<T>(&self, message: T, path: &str) -> anyhow::Result<tonic::Request<T>> {
        follow::signed(&self.signer, &self.name, message, path)
    }

    /// Drops the read model and builds it again from the services' current state.
    pub async fn rebuild(&self) -> anyhow::Result<Rebuilt> {
        let started = Instant::now();
        let mut taken = Vec::new();
        for source in &self.sources {
            let channel = tonic::transport::Endpoint::from_shared(source.url.clone())?
                .connect()
                .await
                .with_context(|| format!("connecting to {}", source.url))?;
            let cursor = follow::current_cursor(&self.signer, &self.name, &source.feed()).await?;
            let items = match source.service {
                Service::Training => self.training(channel).await?,
                Service::Projects => self.projects(channel).await?,
                Service::Metrics => self.metrics(channel).await?,
            };
            taken.push((source.service, cursor, items));
        }
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        // DELETE, not TRUNCATE: the runtime role may (`qi insights rebuild` runs as it in a
        // pod), and readers keep answering from the old model until this commits.
        for table in EMPTIED {
            sqlx::query(table).execute(&mut *tx).await?;
        }
        let mut report = Rebuilt::default();
        for (service, cursor, items) in taken {
            report.resources.push((service.as_str(), items.len()));
            let now = Utc::now();
            let mut latest = HashMap::with_capacity(items.len());
            for (name, collection, bytes) in items {
                latest.insert(name, Latest::Now(collection.to_owned(), bytes, now));
            }
            crate::intake::write(&mut tx, service, latest).await?;
            follow::store_cursor(&mut tx, service.as_str(), &cursor).await?;
        }
        tx.commit().await?;
        report.millis = started.elapsed().as_millis();
        Ok(report)
    }

    async fn training(
        &self,
        channel: Channel,
    ) -> anyhow::Result<Vec<(String, &'static str, Bytes)>> {
        let mut c = TrainingServiceClient::new(channel)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
        let mut out = Vec::new();
        let staff = every!(
            self,
            c,
            list_staff,
            "/qi.training.v1.TrainingService/ListStaff",
            tpb::ListStaffRequest {
                parent: "sites/-".into(),
                show_inactive: true,
                ..Default::default()
            },
            staff
        );
        out.extend(staff.into_iter().map(|s| listed!(tpb, "staff", Staff, s)));
        for parent in ["sites/-", "trust"] {
            let cohorts = every!(
                self,
                c,
                list_cohorts,
                "/qi.training.v1.TrainingService/ListCohorts",
                tpb::ListCohortsRequest {
                    parent: parent.into(),
                    ..Default::default()
                },
                cohorts
            );
            out.extend(
                cohorts
                    .into_iter()
                    .map(|x| listed!(tpb, "cohorts", Cohort, x)),
            );
        }
        let completions = every!(
            self,
            c,
            list_completions,
            "/qi.training.v1.TrainingService/ListCompletions",
            tpb::ListCompletionsRequest {
                parent: "sites/-".into(),
                ..Default::default()
            },
            completions
        );
        out.extend(
            completions
                .into_iter()
                .map(|x| listed!(tpb, "completions", Completion, x)),
        );
        Ok(out)
    }

    async fn projects(
        &self,
        channel: Channel,
    ) -> anyhow::Result<Vec<(String, &'static str, Bytes)>> {
        let mut c = ProjectServiceClient::new(channel)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
        let mut out = Vec::new();
        let projects = every!(
            self,
            c,
            list_projects,
            "/qi.projects.v1.ProjectService/ListProjects",
            ppb::ListProjectsRequest {
                parent: "sites/-".into(),
                ..Default::default()
            },
            projects
        );
        for p in &projects {
            let members = every!(
                self,
                c,
                list_team_members,
                "/qi.projects.v1.ProjectService/ListTeamMembers",
                ppb::ListTeamMembersRequest {
                    parent: p.name.clone(),
                    ..Default::default()
                },
                team_members
            );
            out.extend(
                members
                    .into_iter()
                    .map(|m| listed!(ppb, "teamMembers", TeamMember, m)),
            );
            let measures = every!(
                self,
                c,
                list_measures,
                "/qi.projects.v1.ProjectService/ListMeasures",
                ppb::ListMeasuresRequest {
                    parent: p.name.clone(),
                    ..Default::default()
                },
                measures
            );
            out.extend(
                measures
                    .into_iter()
                    .map(|m| listed!(ppb, "measures", Measure, m)),
            );
            let scores = every!(
                self,
                c,
                list_progress_scores,
                "/qi.projects.v1.ProjectService/ListProgressScores",
                ppb::ListProgressScoresRequest {
                    parent: p.name.clone(),
                    ..Default::default()
                },
                progress_scores
            );
            out.extend(
                scores
                    .into_iter()
                    .map(|x| listed!(ppb, "progressScores", ProgressScore, x)),
            );
            let cycles = every!(
                self,
                c,
                list_pdsa_cycles,
                "/qi.projects.v1.ProjectService/ListPdsaCycles",
                ppb::ListPdsaCyclesRequest {
                    parent: p.name.clone(),
                    ..Default::default()
                },
                pdsa_cycles
            );
            out.extend(
                cycles
                    .into_iter()
                    .map(|x| listed!(ppb, "pdsaCycles", PdsaCycle, x)),
            );
        }
        out.extend(
            projects
                .into_iter()
                .map(|p| listed!(ppb, "projects", Project, p)),
        );
        for parent in ["sites/-", "trust"] {
            let programmes = every!(
                self,
                c,
                list_programmes,
                "/qi.projects.v1.ProjectService/ListProgrammes",
                ppb::ListProgrammesRequest {
                    parent: parent.into(),
                    ..Default::default()
                },
                programmes
            );
            for p in &programmes {
                if p.kind != ppb::ProgrammeKind::WardProgramme as i32 {
                    continue;
                }
                let waves = every!(
                    self,
                    c,
                    list_waves,
                    "/qi.projects.v1.ProjectService/ListWaves",
                    ppb::ListWavesRequest {
                        parent: p.name.clone(),
                        ..Default::default()
                    },
                    waves
                );
                out.extend(waves.into_iter().map(|w| listed!(ppb, "waves", Wave, w)));
                let enrolments = every!(
                    self,
                    c,
                    list_ward_enrolments,
                    "/qi.projects.v1.ProjectService/ListWardEnrolments",
                    ppb::ListWardEnrolmentsRequest {
                        parent: p.name.clone(),
                        ..Default::default()
                    },
                    ward_enrolments
                );
                out.extend(
                    enrolments
                        .into_iter()
                        .map(|e| listed!(ppb, "wardEnrolments", WardEnrolment, e)),
                );
            }
            out.extend(
                programmes
                    .into_iter()
                    .map(|p| listed!(ppb, "programmes", Programme, p)),
            );
        }
        let wards = every!(
            self,
            c,
            list_wards,
            "/qi.projects.v1.ProjectService/ListWards",
            ppb::ListWardsRequest {
                parent: "sites/-".into(),
                ..Default::default()
            },
            wards
        );
        out.extend(wards.into_iter().map(|w| listed!(ppb, "wards", Ward, w)));
        let ideas = every!(
            self,
            c,
            list_ideas,
            "/qi.projects.v1.ProjectService/ListIdeas",
            ppb::ListIdeasRequest {
                parent: "sites/-".into(),
                ..Default::default()
            },
            ideas
        );
        out.extend(ideas.into_iter().map(|i| listed!(ppb, "ideas", Idea, i)));
        Ok(out)
    }

    async fn metrics(
        &self,
        channel: Channel,
    ) -> anyhow::Result<Vec<(String, &'static str, Bytes)>> {
        let mut c = MetricServiceClient::new(channel)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
        let mut out = Vec::new();
        for parent in ["sites/-", "trust"] {
            let metrics = every!(
                self,
                c,
                list_metrics,
                "/qi.metrics.v1.MetricService/ListMetrics",
                mpb::ListMetricsRequest {
                    parent: parent.into(),
                    ..Default::default()
                },
                metrics
            );
            for m in &metrics {
                let measurements = every!(
                    self,
                    c,
                    list_measurements,
                    "/qi.metrics.v1.MetricService/ListMeasurements",
                    mpb::ListMeasurementsRequest {
                        parent: m.name.clone(),
                        ..Default::default()
                    },
                    measurements
                );
                out.extend(
                    measurements
                        .into_iter()
                        .map(|x| listed!(mpb, "measurements", Measurement, x)),
                );
                let points = every!(
                    self,
                    c,
                    list_rebase_points,
                    "/qi.metrics.v1.MetricService/ListRebasePoints",
                    mpb::ListRebasePointsRequest {
                        parent: m.name.clone(),
                        ..Default::default()
                    },
                    rebase_points
                );
                out.extend(
                    points
                        .into_iter()
                        .map(|x| listed!(mpb, "rebasePoints", RebasePoint, x)),
                );
            }
            out.extend(
                metrics
                    .into_iter()
                    .map(|m| listed!(mpb, "metrics", Metric, m)),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_resource_is_mirrored_as_its_feed_would_carry_it() {
        let made = message(ppb::WatchChangesResponse {
            resource_name: "sites/BAS/projects/p".into(),
            collection: "projects".into(),
            kind: ChangeKind::Created as i32,
            ..Default::default()
        });
        let read = <follow::Change as prost::Message>::decode(made).unwrap();
        assert_eq!(read.resource_name, "sites/BAS/projects/p");
        assert_eq!(read.collection, "projects");
        assert_eq!(read.kind, ChangeKind::Created as i32);
    }
}
