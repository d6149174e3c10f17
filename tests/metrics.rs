//! Metrics requests the tests share: definitions, measurements and their strata, charts
//! (stored and stateless), rebase points, annotations, inequality breakdowns and the QMS
//! dashboard.

use qi_proto::google::r#type::Date;
use qi_proto::metrics as pb;
use tonic::Status;

use crate::{Caller, date, ymd};

/// The first of the month `i` months after January 2024.
pub fn month(i: u32) -> Date {
    date(ymd(2024 + (i / 12) as i32, i % 12 + 1, 1))
}

/// A metric definition; with the IMD among its `dimensions`, on the 2019 edition.
pub fn metric(
    display_name: &str,
    kind: pb::MetricKind,
    direction: pb::ImprovementDirection,
    frequency: pb::MetricFrequency,
    value_type: pb::MetricValueType,
    dimensions: &[pb::InequalityDimension],
) -> pb::Metric {
    let imd = dimensions.contains(&pb::InequalityDimension::ImdQuintile);
    pb::Metric {
        display_name: display_name.into(),
        kind: kind as i32,
        improvement_direction: direction as i32,
        frequency: frequency as i32,
        value_type: value_type as i32,
        dimensions: dimensions.iter().map(|d| *d as i32).collect(),
        imd_edition: if imd {
            pb::ImdEdition::Imd2019 as i32
        } else {
            0
        },
        ..Default::default()
    }
}

/// Creates metric `id` under `parent`.
pub async fn create(
    c: &Caller,
    parent: &str,
    id: &str,
    m: pb::Metric,
) -> Result<pb::Metric, Status> {
    let req = pb::CreateMetricRequest {
        parent: parent.into(),
        metric_id: id.into(),
        metric: Some(m),
        request_id: String::new(),
    };
    let made = c.metrics().create_metric(req).await?.into_inner();
    Ok(made.metric.expect("a metric"))
}

/// Reads metric `name`.
pub async fn get_metric(c: &Caller, name: &str) -> Result<pb::Metric, Status> {
    let req = pb::GetMetricRequest { name: name.into() };
    let got = c.metrics().get_metric(req).await?.into_inner();
    Ok(got.metric.expect("a metric"))
}

/// An update of `m`'s fields named in `paths`, guarded by its etag.
pub fn update(m: pb::Metric, paths: &[&str]) -> pb::UpdateMetricRequest {
    pb::UpdateMetricRequest {
        metric: Some(m),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
    }
}

/// Updates a metric.
pub async fn update_metric(c: &Caller, req: pb::UpdateMetricRequest) -> Result<pb::Metric, Status> {
    let updated = c.metrics().update_metric(req).await?.into_inner();
    Ok(updated.metric.expect("a metric"))
}

/// A stratum of these IMD quintile, ethnic category and sex codes (empty: not given).
pub fn stratum(imd: &str, ethnic: &str, sex: &str) -> Option<pb::Stratum> {
    Some(pb::Stratum {
        imd_quintile: imd.into(),
        ethnic_category: ethnic.into(),
        age_band: String::new(),
        sex: sex.into(),
    })
}

/// A rate's measurement: `numerator` over `denominator` in `stratum` for `period`.
pub fn rate(
    period: Date,
    stratum: Option<pb::Stratum>,
    numerator: f64,
    denominator: f64,
) -> pb::Measurement {
    pb::Measurement {
        period: Some(period),
        stratum,
        numerator: Some(numerator),
        denominator: Some(denominator),
        ..Default::default()
    }
}

/// A value's measurement for `period`.
pub fn value(period: Date, v: f64) -> pb::Measurement {
    pb::Measurement {
        period: Some(period),
        value: Some(v),
        ..Default::default()
    }
}

/// Records `measurements` on metric `parent` as one batch.
pub async fn record(
    c: &Caller,
    parent: &str,
    measurements: Vec<pb::Measurement>,
    request_id: &str,
) -> Result<pb::BatchCreateMeasurementsResponse, Status> {
    let req = pb::BatchCreateMeasurementsRequest {
        parent: parent.into(),
        measurements,
        request_id: request_id.into(),
    };
    Ok(c.metrics()
        .batch_create_measurements(req)
        .await?
        .into_inner())
}

/// What a batch did: (created, updated, unchanged).
pub fn counts(r: &pb::BatchCreateMeasurementsResponse) -> (i32, i32, i32) {
    (r.created_count, r.updated_count, r.unchanged_count)
}

/// A page of `page_size` of metric `parent`'s measurements, from `page_token`.
pub async fn list_measurements(
    c: &Caller,
    parent: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListMeasurementsResponse, Status> {
    let req = pb::ListMeasurementsRequest {
        parent: parent.into(),
        page_size,
        page_token: page_token.into(),
        ..Default::default()
    };
    Ok(c.metrics().list_measurements(req).await?.into_inner())
}

/// Metric `metric`'s chart with its stored options, over all its measurements.
pub fn chart_request(metric: &str) -> pb::GetSpcChartRequest {
    pb::GetSpcChartRequest {
        metric: metric.into(),
        ..Default::default()
    }
}

/// A stored metric's chart, and what the service applied to it.
pub async fn get_chart(
    c: &Caller,
    req: pb::GetSpcChartRequest,
) -> Result<pb::GetSpcChartResponse, Status> {
    Ok(c.metrics().get_spc_chart(req).await?.into_inner())
}

/// A stored metric's chart alone.
pub async fn chart(c: &Caller, req: pb::GetSpcChartRequest) -> Result<pb::SpcChart, Status> {
    Ok(get_chart(c, req).await?.chart.expect("a chart"))
}

/// The chart of values sent in the request.
pub async fn compute(c: &Caller, req: pb::ComputeSpcRequest) -> Result<pb::SpcChart, Status> {
    let computed = c.metrics().compute_spc(req).await?.into_inner();
    Ok(computed.chart.expect("a chart"))
}

/// Metric `metric`'s chart as a picture, with its stored options.
pub fn render_request(metric: &str) -> pb::RenderSpcChartRequest {
    pb::RenderSpcChartRequest {
        metric: metric.into(),
        ..Default::default()
    }
}

/// A stored metric's chart drawn.
pub async fn render(
    c: &Caller,
    req: pb::RenderSpcChartRequest,
) -> Result<pb::RenderSpcChartResponse, Status> {
    Ok(c.metrics().render_spc_chart(req).await?.into_inner())
}

/// Rebase point `id` of metric `parent` at `period`, with a reason.
pub fn rebase_point(parent: &str, id: &str, period: Date) -> pb::CreateRebasePointRequest {
    pb::CreateRebasePointRequest {
        parent: parent.into(),
        rebase_point_id: id.into(),
        rebase_point: Some(pb::RebasePoint {
            period: Some(period),
            reason: "discharge-to-assess pathway adopted".into(),
            ..Default::default()
        }),
        request_id: String::new(),
    }
}

/// Creates a rebase point.
pub async fn create_rebase_point(
    c: &Caller,
    req: pb::CreateRebasePointRequest,
) -> Result<(), Status> {
    c.metrics().create_rebase_point(req).await?;
    Ok(())
}

/// Deletes rebase point `name`.
pub async fn delete_rebase_point(c: &Caller, name: &str) -> Result<(), Status> {
    let req = pb::DeleteRebasePointRequest {
        name: name.into(),
        allow_missing: false,
    };
    c.metrics().delete_rebase_point(req).await?;
    Ok(())
}

/// Annotates metric `parent` on `day` with `text`, as annotation `id`.
pub async fn annotate(
    c: &Caller,
    parent: &str,
    id: &str,
    day: Date,
    text: &str,
) -> Result<(), Status> {
    let req = pb::CreateAnnotationRequest {
        parent: parent.into(),
        annotation_id: id.into(),
        annotation: Some(pb::Annotation {
            date: Some(day),
            text: text.into(),
            ..Default::default()
        }),
        request_id: String::new(),
    };
    c.metrics().create_annotation(req).await?;
    Ok(())
}

/// Deletes annotation `name`; `allow_missing`: a missing one is no error.
pub async fn delete_annotation(c: &Caller, name: &str, allow_missing: bool) -> Result<(), Status> {
    let req = pb::DeleteAnnotationRequest {
        name: name.into(),
        allow_missing,
    };
    c.metrics().delete_annotation(req).await?;
    Ok(())
}

/// Metric `metric`'s breakdown by `dimension`, over all its periods.
pub fn breakdown_request(
    metric: &str,
    dimension: pb::InequalityDimension,
) -> pb::GetInequalityBreakdownRequest {
    pb::GetInequalityBreakdownRequest {
        metric: metric.into(),
        dimension: dimension as i32,
        ..Default::default()
    }
}

/// A metric's inequality breakdown.
pub async fn breakdown(
    c: &Caller,
    req: pb::GetInequalityBreakdownRequest,
) -> Result<pb::InequalityBreakdown, Status> {
    let got = c
        .metrics()
        .get_inequality_breakdown(req)
        .await?
        .into_inner();
    Ok(got.breakdown.expect("a breakdown"))
}

/// The first page of the QMS dashboard of `parent`, of metrics of these `kinds` (none: QMS).
pub fn dashboard_request(parent: &str, kinds: &[pb::MetricKind]) -> pb::GetQmsDashboardRequest {
    pb::GetQmsDashboardRequest {
        parent: parent.into(),
        kinds: kinds.iter().map(|k| *k as i32).collect(),
        ..Default::default()
    }
}

/// A page of the QMS dashboard.
pub async fn dashboard(
    c: &Caller,
    req: pb::GetQmsDashboardRequest,
) -> Result<pb::GetQmsDashboardResponse, Status> {
    Ok(c.metrics().get_qms_dashboard(req).await?.into_inner())
}

/// The metric names of a dashboard's rows, in order.
pub fn row_names(board: &pb::GetQmsDashboardResponse) -> Vec<&str> {
    board.rows.iter().map(|r| r.metric.as_str()).collect()
}
