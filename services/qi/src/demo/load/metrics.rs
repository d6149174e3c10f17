//! Loads each site's metrics: the definition, the measurements (a batch that changes
//! nothing when sent again), the annotation and the rebase point.

use chrono::NaiveDate;
use qi_platform::convert::date;
use qi_proto::metrics as pb;

use super::client::{Api, created, each, failed, rpc};
use crate::demo::Tally;
use crate::demo::plan::metrics::{
    MetricPlan, Series, WIDENING_METRIC, WIDENING_SITE, YOUNG_METRIC, YOUNG_SITE, series,
    widening_metric, young_metric,
};
use crate::demo::plan::portfolio::portfolio;

/// Loads each site's four metrics, the young metric and the widening one.
pub(crate) async fn load(api: &Api) -> anyhow::Result<Tally> {
    let mut extras = extra(api, YOUNG_SITE, YOUNG_METRIC, young_metric()).await?;
    extras += extra(api, WIDENING_SITE, WIDENING_METRIC, widening_metric()).await?;
    let api = api.clone();
    let mut tally = each(series(&portfolio()), move |series| {
        let api = api.clone();
        async move { metric(&api, series).await }
    })
    .await?;
    tally += extras;
    Ok(tally)
}

/// Creates a metric outside the four (or finds it) and records its measurements.
async fn extra(
    api: &Api,
    site: &str,
    id: &str,
    (definition, measurements): (pb::Metric, Vec<pb::Measurement>),
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let name = format!("sites/{site}/metrics/{id}");
    let made = created(
        rpc!(
            api.metrics,
            create_metric,
            pb::CreateMetricRequest {
                parent: format!("sites/{site}"),
                metric_id: id.into(),
                metric: Some(definition),
                request_id: String::new(),
            }
        ),
        &name,
    )?;
    if made.is_some() {
        tally.created += 1;
    } else {
        tally.existing += 1;
    }
    rpc!(
        api.metrics,
        batch_create_measurements,
        pb::BatchCreateMeasurementsRequest {
            parent: name.clone(),
            measurements,
            request_id: String::new(),
        }
    )
    .map_err(|s| failed(s, &format!("recording {name}")))?;
    Ok(tally)
}

/// Creates a site's metric (or finds it), records its measurements, and marks where it
/// improved.
async fn metric(api: &Api, x: Series) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let name = x.name();
    let MetricPlan {
        definition,
        measurements,
        note,
        rebase,
    } = x.plan();
    let made = created(
        rpc!(
            api.metrics,
            create_metric,
            pb::CreateMetricRequest {
                parent: format!("sites/{}", x.site),
                metric_id: x.qms.id().into(),
                metric: Some(definition),
                request_id: String::new(),
            }
        ),
        &name,
    )?;
    if made.is_some() {
        tally.created += 1;
    } else {
        tally.existing += 1;
    }
    // Re-sending a batch changes nothing: the key is the period and stratum.
    let stored = rpc!(
        api.metrics,
        batch_create_measurements,
        pb::BatchCreateMeasurementsRequest {
            parent: name.clone(),
            measurements,
            request_id: String::new(),
        }
    )
    .map_err(|s| failed(s, &format!("recording {name}")))?;
    if stored.updated_count > 0 || (made.is_none() && stored.created_count > 0) {
        tally.advanced += 1;
    }
    tally.created += mark_improvement(api, &x, note, rebase).await?;
    Ok(tally)
}

/// Annotates the day the metric improved and, where the shift is sustained, rebases it
/// from the period that day falls in; returns how many of the two it added.
async fn mark_improvement(
    api: &Api,
    x: &Series,
    note: &str,
    rebase: Option<NaiveDate>,
) -> anyhow::Result<u64> {
    let name = x.name();
    let annotation = created(
        rpc!(
            api.metrics,
            create_annotation,
            pb::CreateAnnotationRequest {
                parent: name.clone(),
                annotation_id: "project-completed".into(),
                annotation: Some(pb::Annotation {
                    date: Some(date(x.improved)),
                    text: note.into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            }
        ),
        &format!("annotating {name}"),
    )?;
    let mut added = u64::from(annotation.is_some());
    if let Some(period) = rebase {
        let point = created(
            rpc!(
                api.metrics,
                create_rebase_point,
                pb::CreateRebasePointRequest {
                    parent: name.clone(),
                    rebase_point_id: "after-project".into(),
                    rebase_point: Some(pb::RebasePoint {
                        period: Some(date(period)),
                        reason: format!("{note}: a sustained shift"),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                }
            ),
            &format!("rebasing {name}"),
        )?;
        added += u64::from(point.is_some());
    }
    Ok(added)
}
