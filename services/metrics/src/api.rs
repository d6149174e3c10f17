//! The gRPC face of the metrics service: reads the access context, validates (naming every
//! bad field), and runs each call's SQL scoped to the caller's sites; writes are one
//! transaction each.

use std::sync::Arc;

use chrono::NaiveDate;
use qi_platform::names::{self, ListParent, Owner};
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error, SiteCode, Violations, call, idempotency};
use qi_proto::metrics as pb;
use qi_proto::metrics::metric_service_server::{MetricService, MetricServiceServer};
use sqlx::{PgConnection, PgPool};
use tonic::{Request, Response, Status};

use crate::annotations::{self, ANNOTATIONS};
use crate::charts::{self, Source};
use crate::dashboard;
use crate::definitions::store::Lock;
use crate::definitions::{self, DashboardScope, Kind, Metric};
use crate::dimensions::{self, Dimension};
use crate::inequality::{self, StratumData};
use crate::measurements;
use crate::rebase_points::{self, REBASE_POINTS};
use crate::render::{self, Picture};
use crate::series::{self, Filter};
use crate::spc::{SpcChart, SpcOptions};

/// The metrics service.
#[derive(Debug, Clone)]
pub struct MetricsApi {
    pool: PgPool,
    sites: Arc<[SiteCode]>,
}

/// What the idempotency table keeps of a batch: a digest of the validated measurements
/// rather than the whole request (up to 10,000 of them), enough to tell a replay from a
/// different request.
#[derive(Clone, PartialEq, prost::Message)]
struct BatchDigest {
    #[prost(string, tag = "1")]
    parent: String,
    #[prost(fixed64, tag = "2")]
    first: u64,
    #[prost(fixed64, tag = "3")]
    second: u64,
    #[prost(uint64, tag = "4")]
    length: u64,
}

/// A stored metric's chart, with what was needed to compute it.
struct StoredChart {
    metric: Metric,
    periods: Vec<NaiveDate>,
    options: SpcOptions,
    /// The chart, or why there is none.
    chart: Result<SpcChart, &'static str>,
    applied_rebase_points: Vec<pb::RebasePoint>,
    annotations: Vec<pb::Annotation>,
}

/// A chart's request fields, shared by GetSpcChart and RenderSpcChart.
struct ChartRequest {
    metric: String,
    filter: Option<pb::SeriesFilter>,
    options: Option<pb::SpcOptions>,
    ignore_rebase_points: bool,
}

fn view(v: i32) -> Result<pb::SpcChartView, Error> {
    pb::SpcChartView::try_from(v).map_err(|_| Error::invalid("view", "choose FULL or SUMMARY"))
}

impl MetricsApi {
    /// The service over `pool` (search_path `metrics`), knowing the trust's site codes.
    pub fn new(pool: PgPool, sites: &[SiteCode]) -> Self {
        MetricsApi {
            pool,
            sites: sites.into(),
        }
    }

    /// The tonic server of this service.
    pub fn into_server(self) -> MetricServiceServer<Self> {
        MetricServiceServer::new(self)
            .max_decoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES)
    }

    async fn create_metric(
        &self,
        ctx: &AccessContext,
        req: pb::CreateMetricRequest,
    ) -> Result<pb::CreateMetricResponse, Error> {
        let new = definitions::NewMetric::try_from(req.clone())?;
        new.owner.check_write(ctx)?;
        new.owner.check_known("parent", &self.sites)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        if let Some(saved) = idempotency::claim(&mut tx, ctx, &new.request_id, &req).await? {
            return Ok(saved);
        }
        let metric = definitions::store::insert(&mut tx, &new).await?;
        let resp = pb::CreateMetricResponse {
            metric: Some(metric.to_proto()),
        };
        idempotency::record(&mut tx, ctx, &new.request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn get_metric(
        &self,
        ctx: &AccessContext,
        req: pb::GetMetricRequest,
    ) -> Result<pb::GetMetricResponse, Error> {
        let pb::GetMetricRequest { name } = req;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let metric = definitions::resolve(&mut conn, ctx, "name", &name, false, Lock::None).await?;
        Ok(pb::GetMetricResponse {
            metric: Some(metric.to_proto()),
        })
    }

    async fn list_metrics(
        &self,
        ctx: &AccessContext,
        req: pb::ListMetricsRequest,
    ) -> Result<pb::ListMetricsResponse, Error> {
        let pb::ListMetricsRequest {
            parent,
            page_size,
            page_token,
        } = req;
        let list_parent = ListParent::parse("parent", &parent)?;
        let page = Page::parse(page_size, &page_token, &parent)?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let scope = list_parent.scope(ctx)?;
        let (metrics, next_page_token) = definitions::store::list(&mut conn, &scope, &page).await?;
        Ok(pb::ListMetricsResponse {
            metrics,
            next_page_token,
        })
    }

    async fn update_metric(
        &self,
        ctx: &AccessContext,
        req: pb::UpdateMetricRequest,
    ) -> Result<pb::UpdateMetricResponse, Error> {
        let pb::UpdateMetricRequest {
            metric,
            update_mask,
        } = req;
        let metric = metric.ok_or_else(|| Error::invalid("metric", "is required"))?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let current = definitions::resolve(
            &mut tx,
            ctx,
            "metric.name",
            &metric.name,
            true,
            Lock::Update,
        )
        .await?;
        let settings = definitions::updated_settings(&current, &metric, update_mask.as_ref())?;
        let updated = definitions::store::update(&mut tx, current.uid, &settings).await?;
        tx.commit().await?;
        Ok(pb::UpdateMetricResponse {
            metric: Some(updated.to_proto()),
        })
    }

    async fn batch_create_measurements(
        &self,
        ctx: &AccessContext,
        req: pb::BatchCreateMeasurementsRequest,
    ) -> Result<pb::BatchCreateMeasurementsResponse, Error> {
        idempotency::validate_request_id(&req.request_id)?;
        let pb::BatchCreateMeasurementsRequest {
            parent,
            measurements,
            request_id,
        } = req;
        let (owner, id) = names::parse_name("parent", &parent, definitions::COLLECTION)?;
        owner.check_write(ctx)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        // FOR SHARE: the recording rules cannot change under the batch.
        let metric = definitions::store::get(&mut tx, &owner, &id, Lock::Share)
            .await?
            .ok_or_else(|| Error::not_found(&parent))?;
        let latest = qi_platform::calendar::today();
        let columns = measurements::validate(&metric, &self.sites, latest, measurements)?;
        if !request_id.is_empty() {
            let (first, second, length) = measurements::digest(&columns);
            let digest = BatchDigest {
                parent: parent.clone(),
                first,
                second,
                length,
            };
            if let Some(saved) = idempotency::claim(&mut tx, ctx, &request_id, &digest).await? {
                return Ok(saved);
            }
        }
        let outcome = measurements::store::write(&mut tx, metric.uid, columns).await?;
        let count = |n: i64| i32::try_from(n).unwrap_or(i32::MAX);
        let resp = pb::BatchCreateMeasurementsResponse {
            created_count: count(outcome.created),
            updated_count: count(outcome.updated),
            unchanged_count: count(outcome.unchanged),
        };
        idempotency::record(&mut tx, ctx, &request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn list_measurements(
        &self,
        ctx: &AccessContext,
        req: pb::ListMeasurementsRequest,
    ) -> Result<pb::ListMeasurementsResponse, Error> {
        let pb::ListMeasurementsRequest {
            parent,
            page_size,
            page_token,
            start_date,
            end_date,
        } = req;
        let mut v = Violations::new();
        let from = v.check(qi_platform::convert::optional_date(
            "start_date",
            start_date.as_ref(),
        ));
        let before = v.check(qi_platform::convert::optional_date(
            "end_date",
            end_date.as_ref(),
        ));
        v.finish()?;
        let page = Page::parse(
            page_size,
            &page_token,
            &format!("{parent}|{from:?}|{before:?}"),
        )?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let metric =
            definitions::resolve(&mut conn, ctx, "parent", &parent, false, Lock::None).await?;
        let (measurements, next_page_token) =
            measurements::store::list(&mut conn, &metric, &ctx.sites, from, before, &page).await?;
        Ok(pb::ListMeasurementsResponse {
            measurements,
            next_page_token,
        })
    }

    async fn create_annotation(
        &self,
        ctx: &AccessContext,
        req: pb::CreateAnnotationRequest,
    ) -> Result<pb::CreateAnnotationResponse, Error> {
        idempotency::validate_request_id(&req.request_id)?;
        let new = annotations::read(&req.annotation_id, req.annotation.clone())?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let metric =
            definitions::resolve(&mut tx, ctx, "parent", &req.parent, true, Lock::None).await?;
        if let Some(saved) = idempotency::claim(&mut tx, ctx, &req.request_id, &req).await? {
            return Ok(saved);
        }
        let annotation = annotations::store::insert(&mut tx, &metric, &new, &ctx.subject).await?;
        let resp = pb::CreateAnnotationResponse {
            annotation: Some(annotation),
        };
        idempotency::record(&mut tx, ctx, &req.request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn list_annotations(
        &self,
        ctx: &AccessContext,
        req: pb::ListAnnotationsRequest,
    ) -> Result<pb::ListAnnotationsResponse, Error> {
        let pb::ListAnnotationsRequest {
            parent,
            page_size,
            page_token,
        } = req;
        let page = Page::parse(page_size, &page_token, &parent)?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let metric =
            definitions::resolve(&mut conn, ctx, "parent", &parent, false, Lock::None).await?;
        let (annotations, next_page_token) =
            annotations::store::list(&mut conn, &metric, &page).await?;
        Ok(pb::ListAnnotationsResponse {
            annotations,
            next_page_token,
        })
    }

    /// Deletes an annotation or a rebase point by name.
    async fn delete_child(
        &self,
        ctx: &AccessContext,
        name: &str,
        collection: &str,
        allow_missing: bool,
    ) -> Result<(), Error> {
        let (owner, metric_id, id) = definitions::parse_child("name", name, collection)?;
        owner.check_write(ctx)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let Some(metric) = definitions::store::get(&mut tx, &owner, &metric_id, Lock::None).await?
        else {
            return if allow_missing {
                Ok(())
            } else {
                Err(Error::not_found(name))
            };
        };
        let deleted = if collection == ANNOTATIONS {
            annotations::store::delete(&mut tx, &metric, &id).await?
        } else {
            rebase_points::store::delete(&mut tx, &metric, &id).await?
        };
        tx.commit().await?;
        if deleted || allow_missing {
            Ok(())
        } else {
            Err(Error::not_found(name))
        }
    }

    async fn create_rebase_point(
        &self,
        ctx: &AccessContext,
        req: pb::CreateRebasePointRequest,
    ) -> Result<pb::CreateRebasePointResponse, Error> {
        idempotency::validate_request_id(&req.request_id)?;
        let mut tx = qi_platform::db::begin(&self.pool).await?;
        let metric =
            definitions::resolve(&mut tx, ctx, "parent", &req.parent, true, Lock::Share).await?;
        let new = rebase_points::read(&metric, &req.rebase_point_id, req.rebase_point.clone())?;
        if let Some(saved) = idempotency::claim(&mut tx, ctx, &req.request_id, &req).await? {
            return Ok(saved);
        }
        let rebase_point = rebase_points::store::insert(&mut tx, &metric, &new).await?;
        let resp = pb::CreateRebasePointResponse {
            rebase_point: Some(rebase_point),
        };
        idempotency::record(&mut tx, ctx, &req.request_id, &resp).await?;
        tx.commit().await?;
        Ok(resp)
    }

    async fn list_rebase_points(
        &self,
        ctx: &AccessContext,
        req: pb::ListRebasePointsRequest,
    ) -> Result<pb::ListRebasePointsResponse, Error> {
        let pb::ListRebasePointsRequest {
            parent,
            page_size,
            page_token,
        } = req;
        let page = Page::parse(page_size, &page_token, &parent)?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let metric =
            definitions::resolve(&mut conn, ctx, "parent", &parent, false, Lock::None).await?;
        let (rebase_points, next_page_token) =
            rebase_points::store::list(&mut conn, &metric, &page).await?;
        Ok(pb::ListRebasePointsResponse {
            rebase_points,
            next_page_token,
        })
    }

    /// Reads a stored metric's series and computes its chart.
    async fn stored_chart(
        &self,
        conn: &mut PgConnection,
        ctx: &AccessContext,
        req: ChartRequest,
    ) -> Result<StoredChart, Error> {
        let ChartRequest {
            metric,
            filter,
            options,
            ignore_rebase_points,
        } = req;
        let metric = definitions::resolve(conn, ctx, "metric", &metric, false, Lock::None).await?;
        let mut v = Violations::new();
        let filter = v.check(Filter::parse(ctx, "filter", &metric, filter));
        let options = v
            .check(
                charts::read_options(
                    options,
                    Source::Metric {
                        direction: metric.settings.direction,
                        target: metric.settings.target,
                    },
                )
                .map(Some),
            )
            .unwrap_or_default();
        v.finish()?;
        let grouped = series::store::read(conn, &[&metric], None, &filter).await?;
        let points = series::values(&metric, grouped.get(&metric.uid).and_then(|l| l.get("")));
        if points.len() > charts::MAX_POINTS {
            return Err(Error::invalid(
                "filter.start_date",
                format!(
                    "the series holds {} periods; a chart holds at most {}: narrow the range",
                    points.len(),
                    charts::MAX_POINTS
                ),
            ));
        }
        let periods: Vec<NaiveDate> = points.iter().map(|(p, _)| *p).collect();
        let values: Vec<f64> = points.iter().map(|(_, v)| *v).collect();
        let mut options = options;
        let mut applied_rebase_points = Vec::new();
        if !ignore_rebase_points && !periods.is_empty() {
            let stored = rebase_points::store::of_metrics(conn, &[&metric]).await?;
            let (positions, applied) = rebase_points::positions(
                &periods,
                stored.get(&metric.uid).map_or(&[][..], Vec::as_slice),
            );
            options.rebase_positions = positions;
            applied_rebase_points = applied;
        }
        let (chart, annotations) = match (periods.first(), periods.last()) {
            (Some(first), Some(last)) => {
                let chart = charts::compute(&values, &options)?;
                let end = metric.frequency.next(*last);
                let notes = annotations::store::between(conn, &metric, *first, end).await?;
                (Ok(chart), notes)
            }
            (None, _) | (_, None) => (Err("no measurements in the range"), Vec::new()),
        };
        Ok(StoredChart {
            metric,
            periods,
            options,
            chart,
            applied_rebase_points,
            annotations,
        })
    }

    async fn get_spc_chart(
        &self,
        ctx: &AccessContext,
        req: pb::GetSpcChartRequest,
    ) -> Result<pb::GetSpcChartResponse, Error> {
        let pb::GetSpcChartRequest {
            metric,
            filter,
            options,
            ignore_rebase_points,
            view: chart_view,
        } = req;
        let chart_view = view(chart_view)?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let stored = self
            .stored_chart(
                &mut conn,
                ctx,
                ChartRequest {
                    metric,
                    filter,
                    options,
                    ignore_rebase_points,
                },
            )
            .await?;
        let chart = match &stored.chart {
            Ok(chart) => {
                charts::to_proto(chart, Some(&stored.periods), &stored.options, chart_view)
            }
            Err(reason) => charts::empty(&stored.options, reason),
        };
        Ok(pb::GetSpcChartResponse {
            chart: Some(chart),
            annotations: stored.annotations,
            applied_rebase_points: stored.applied_rebase_points,
        })
    }

    fn compute_spc(&self, req: pb::ComputeSpcRequest) -> Result<pb::ComputeSpcResponse, Error> {
        let pb::ComputeSpcRequest {
            values,
            options,
            view: chart_view,
        } = req;
        let mut v = Violations::new();
        if values.is_empty() {
            v.add(
                "values",
                "is required: send 1 to 20,000 values in time order",
            );
        }
        for (i, x) in values
            .iter()
            .enumerate()
            .filter(|(_, x)| !x.is_finite())
            .take(20)
        {
            v.add(
                format!("values[{i}]"),
                format!("is not a finite number ({x})"),
            );
        }
        let options = v
            .check(charts::read_options(options, Source::Values { len: values.len() }).map(Some))
            .unwrap_or_default();
        let chart_view = v
            .check(view(chart_view).map(Some))
            .unwrap_or(pb::SpcChartView::Full);
        v.finish()?;
        let chart = charts::compute(&values, &options)?;
        Ok(pb::ComputeSpcResponse {
            chart: Some(charts::to_proto(&chart, None, &options, chart_view)),
        })
    }

    async fn render_spc_chart(
        &self,
        ctx: &AccessContext,
        req: pb::RenderSpcChartRequest,
    ) -> Result<pb::RenderSpcChartResponse, Error> {
        let pb::RenderSpcChartRequest {
            metric,
            filter,
            options,
            ignore_rebase_points,
            width,
            height,
            title,
        } = req;
        let mut v = Violations::new();
        let width = match width {
            0 => 960,
            w => v.check(qi_platform::convert::int_in("width", w, 320..=4_000)),
        };
        let height = match height {
            0 => 540,
            h => v.check(qi_platform::convert::int_in("height", h, 240..=3_000)),
        };
        let title = title.trim().to_owned();
        if title.chars().count() > 200 {
            v.add("title", "is longer than 200 characters");
        }
        v.finish()?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let stored = self
            .stored_chart(
                &mut conn,
                ctx,
                ChartRequest {
                    metric,
                    filter,
                    options,
                    ignore_rebase_points,
                },
            )
            .await?;
        let notes: Vec<(NaiveDate, String)> = stored
            .annotations
            .iter()
            .filter_map(|a| {
                let d = a.date?;
                let day = NaiveDate::from_ymd_opt(
                    d.year,
                    u32::try_from(d.month).ok()?,
                    u32::try_from(d.day).ok()?,
                )?;
                Some((day, a.text.clone()))
            })
            .collect();
        let note = match &stored.chart {
            Ok(chart) => charts::sufficiency_reason(chart, &stored.options),
            Err(_) => String::new(),
        };
        let title = if title.is_empty() {
            stored.metric.settings.display_name.clone()
        } else {
            title
        };
        let svg = render::svg(&Picture {
            title: &title,
            unit: &stored.metric.settings.unit,
            width: width.unsigned_abs(),
            height: height.unsigned_abs(),
            frequency: stored.metric.frequency,
            direction: stored.options.improvement_direction,
            target: stored.options.target,
            chart: stored.chart.as_ref().map_err(|e| *e),
            periods: &stored.periods,
            annotations: &notes,
            sufficiency_note: &note,
        });
        Ok(pb::RenderSpcChartResponse {
            svg,
            content_type: "image/svg+xml".into(),
        })
    }

    async fn get_inequality_breakdown(
        &self,
        ctx: &AccessContext,
        req: pb::GetInequalityBreakdownRequest,
    ) -> Result<pb::GetInequalityBreakdownResponse, Error> {
        let pb::GetInequalityBreakdownRequest {
            metric,
            dimension,
            filter,
            combine_ethnic_groups,
        } = req;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let metric =
            definitions::resolve(&mut conn, ctx, "metric", &metric, false, Lock::None).await?;
        let recording = &metric.settings.recording;
        let mut v = Violations::new();
        let dim = match Dimension::from_proto(dimension) {
            None => {
                v.add(
                    "dimension",
                    "choose IMD_QUINTILE, ETHNIC_CATEGORY, AGE_BAND or SEX",
                );
                None
            }
            Some(d) if !recording.records(d) => {
                let recorded: Vec<&str> = recording.dimensions.iter().map(|d| d.title()).collect();
                v.add(
                    "dimension",
                    if recorded.is_empty() {
                        format!(
                            "the metric is not recorded by {}, nor by any dimension",
                            d.title()
                        )
                    } else {
                        format!(
                            "the metric is not recorded by {}: it is recorded by {}",
                            d.title(),
                            recorded.join(", ")
                        )
                    },
                );
                None
            }
            Some(d) => Some(d),
        };
        let filter = v
            .check(Filter::parse(ctx, "filter", &metric, filter).map(Some))
            .unwrap_or_default();
        if let Some(d) = dim
            && !filter.labels[d.index()].is_empty()
        {
            v.add(
                format!("filter.stratum.{}", d.stratum_field()),
                "is the dimension broken down: filter on the other dimensions only",
            );
        }
        if combine_ethnic_groups && dim != Some(Dimension::Ethnicity) {
            v.add(
                "combine_ethnic_groups",
                "applies to the ETHNIC_CATEGORY dimension only",
            );
        }
        v.finish()?;
        let dim = dim.ok_or_else(|| Error::invalid("dimension", "is required"))?;
        // Each stratum's history (for its SPC) runs from the first measurement; the range
        // proper starts at `filter.from`.
        let history = Filter {
            from: None,
            ..filter.clone()
        };
        let mut grouped = series::store::read(&mut conn, &[&metric], Some(dim), &history).await?;
        let by_label = grouped.remove(&metric.uid).unwrap_or_default();
        let combined = combine_ethnic_groups;
        let labels = if combined {
            dimensions::broad_group_labels()
        } else {
            recording.labels(dim)
        };
        let strata: Vec<StratumData> = labels
            .into_iter()
            .map(|label| {
                let parts = by_label
                    .iter()
                    .filter(|(l, _)| {
                        if combined {
                            dimensions::broad_group(l) == label
                        } else {
                            **l == label
                        }
                    })
                    .map(|(_, p)| p);
                StratumData {
                    periods: series::merge(parts),
                    label,
                }
            })
            .collect();
        let stored = rebase_points::store::of_metrics(&mut conn, &[&metric]).await?;
        let breakdown = inequality::breakdown(&inequality::Input {
            metric: &metric,
            dimension: dim,
            strata,
            from: filter.from,
            rebase_points: stored.get(&metric.uid).map_or(&[][..], Vec::as_slice),
            ethnic_groups_combined: combined,
        });
        Ok(pb::GetInequalityBreakdownResponse {
            breakdown: Some(breakdown),
        })
    }

    async fn get_qms_dashboard(
        &self,
        ctx: &AccessContext,
        req: pb::GetQmsDashboardRequest,
    ) -> Result<pb::GetQmsDashboardResponse, Error> {
        let pb::GetQmsDashboardRequest {
            parent,
            kinds,
            page_size,
            page_token,
        } = req;
        let mut v = Violations::new();
        let list_parent = v.check(ListParent::parse("parent", &parent).map(Some));
        let mut kind_columns = Vec::new();
        for (i, k) in kinds.iter().enumerate() {
            let kind = v.check(Kind::from_proto(&format!("kinds[{i}]"), *k));
            if !kind_columns.contains(&kind.column()) {
                kind_columns.push(kind.column());
            }
        }
        if kind_columns.is_empty() {
            kind_columns.push(Kind::Qms.column());
        }
        v.finish()?;
        let scope = match list_parent {
            Some(ListParent::Owner(Owner::Trust)) => DashboardScope {
                trust: true,
                sites: Some(Vec::new()),
                kinds: kind_columns.clone(),
            },
            Some(ListParent::Owner(owner @ Owner::Site(_))) => {
                owner.check_read(ctx)?;
                DashboardScope {
                    trust: true,
                    sites: Some(owner.site_column().map(str::to_owned).into_iter().collect()),
                    kinds: kind_columns.clone(),
                }
            }
            Some(ListParent::AllSites) | None => DashboardScope {
                trust: true,
                sites: ctx.sites.sql_filter(),
                kinds: kind_columns.clone(),
            },
        };
        let page = Page::parse(
            page_size,
            &page_token,
            &format!("{parent}|{}", kind_columns.join(",")),
        )?;
        let mut conn = qi_platform::db::begin(&self.pool).await?;
        let (metrics, next_page_token) =
            definitions::store::list_for_dashboard(&mut conn, &scope, &page).await?;
        let rows = dashboard::rows(&mut conn, &ctx.sites, &metrics).await?;
        Ok(pb::GetQmsDashboardResponse {
            rows,
            next_page_token,
        })
    }
}

#[tonic::async_trait]
impl MetricService for MetricsApi {
    async fn create_metric(
        &self,
        req: Request<pb::CreateMetricRequest>,
    ) -> Result<Response<pb::CreateMetricResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.create_metric(&ctx, r).await },
        )
        .await
    }

    async fn get_metric(
        &self,
        req: Request<pb::GetMetricRequest>,
    ) -> Result<Response<pb::GetMetricResponse>, Status> {
        call(req, |ctx, r| async move { self.get_metric(&ctx, r).await }).await
    }

    async fn list_metrics(
        &self,
        req: Request<pb::ListMetricsRequest>,
    ) -> Result<Response<pb::ListMetricsResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.list_metrics(&ctx, r).await },
        )
        .await
    }

    async fn update_metric(
        &self,
        req: Request<pb::UpdateMetricRequest>,
    ) -> Result<Response<pb::UpdateMetricResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.update_metric(&ctx, r).await },
        )
        .await
    }

    async fn batch_create_measurements(
        &self,
        req: Request<pb::BatchCreateMeasurementsRequest>,
    ) -> Result<Response<pb::BatchCreateMeasurementsResponse>, Status> {
        call(req, |ctx, r| async move {
            self.batch_create_measurements(&ctx, r).await
        })
        .await
    }

    async fn list_measurements(
        &self,
        req: Request<pb::ListMeasurementsRequest>,
    ) -> Result<Response<pb::ListMeasurementsResponse>, Status> {
        call(req, |ctx, r| async move {
            self.list_measurements(&ctx, r).await
        })
        .await
    }

    async fn create_annotation(
        &self,
        req: Request<pb::CreateAnnotationRequest>,
    ) -> Result<Response<pb::CreateAnnotationResponse>, Status> {
        call(req, |ctx, r| async move {
            self.create_annotation(&ctx, r).await
        })
        .await
    }

    async fn list_annotations(
        &self,
        req: Request<pb::ListAnnotationsRequest>,
    ) -> Result<Response<pb::ListAnnotationsResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.list_annotations(&ctx, r).await },
        )
        .await
    }

    async fn delete_annotation(
        &self,
        req: Request<pb::DeleteAnnotationRequest>,
    ) -> Result<Response<pb::DeleteAnnotationResponse>, Status> {
        call(req, |ctx, r| async move {
            let pb::DeleteAnnotationRequest {
                name,
                allow_missing,
            } = r;
            self.delete_child(&ctx, &name, ANNOTATIONS, allow_missing)
                .await
                .map(|()| pb::DeleteAnnotationResponse {})
        })
        .await
    }

    async fn create_rebase_point(
        &self,
        req: Request<pb::CreateRebasePointRequest>,
    ) -> Result<Response<pb::CreateRebasePointResponse>, Status> {
        call(req, |ctx, r| async move {
            self.create_rebase_point(&ctx, r).await
        })
        .await
    }

    async fn list_rebase_points(
        &self,
        req: Request<pb::ListRebasePointsRequest>,
    ) -> Result<Response<pb::ListRebasePointsResponse>, Status> {
        call(req, |ctx, r| async move {
            self.list_rebase_points(&ctx, r).await
        })
        .await
    }

    async fn delete_rebase_point(
        &self,
        req: Request<pb::DeleteRebasePointRequest>,
    ) -> Result<Response<pb::DeleteRebasePointResponse>, Status> {
        call(req, |ctx, r| async move {
            let pb::DeleteRebasePointRequest {
                name,
                allow_missing,
            } = r;
            self.delete_child(&ctx, &name, REBASE_POINTS, allow_missing)
                .await
                .map(|()| pb::DeleteRebasePointResponse {})
        })
        .await
    }

    async fn get_spc_chart(
        &self,
        req: Request<pb::GetSpcChartRequest>,
    ) -> Result<Response<pb::GetSpcChartResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.get_spc_chart(&ctx, r).await },
        )
        .await
    }

    async fn compute_spc(
        &self,
        req: Request<pb::ComputeSpcRequest>,
    ) -> Result<Response<pb::ComputeSpcResponse>, Status> {
        call(req, |_, r| async move { self.compute_spc(r) }).await
    }

    async fn render_spc_chart(
        &self,
        req: Request<pb::RenderSpcChartRequest>,
    ) -> Result<Response<pb::RenderSpcChartResponse>, Status> {
        call(
            req,
            |ctx, r| async move { self.render_spc_chart(&ctx, r).await },
        )
        .await
    }

    async fn get_inequality_breakdown(
        &self,
        req: Request<pb::GetInequalityBreakdownRequest>,
    ) -> Result<Response<pb::GetInequalityBreakdownResponse>, Status> {
        call(req, |ctx, r| async move {
            self.get_inequality_breakdown(&ctx, r).await
        })
        .await
    }

    async fn get_qms_dashboard(
        &self,
        req: Request<pb::GetQmsDashboardRequest>,
    ) -> Result<Response<pb::GetQmsDashboardResponse>, Status> {
        call(req, |ctx, r| async move {
            self.get_qms_dashboard(&ctx, r).await
        })
        .await
    }
}
