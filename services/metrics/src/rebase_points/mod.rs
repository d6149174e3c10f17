//! Rebase points (`{metric}/rebasePoints/{id}`): where a metric's chart starts a new
//! group; their RPCs, the validated point, and where points fall in a series.

use chrono::NaiveDate;
use qi_platform::changes::Kind;
use qi_platform::convert::{required_date, required_text};
use qi_platform::names;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::metrics as pb;

use crate::MetricsApi;
use crate::definitions::{self, Metric, store::Lock};

pub(crate) mod store;

/// The collection id in rebase point names.
pub(crate) const REBASE_POINTS: &str = "rebasePoints";

/// CreateRebasePoint: a point starting a period of a metric the caller may write, read
/// `FOR SHARE` so its frequency holds (idempotent by `request_id`).
pub(crate) async fn create(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::CreateRebasePointRequest,
) -> Result<pb::CreateRebasePointResponse, Error> {
    idempotency::validate_request_id(&req.request_id)?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let metric =
        definitions::resolve(&mut tx, &ctx, "parent", &req.parent, true, Lock::Share).await?;
    let new = read(&metric, &req.rebase_point_id, req.rebase_point.clone())?;
    idempotency::once(tx, &ctx, &req.request_id, &req, async |tx| {
        let rebase_point = store::insert(tx, &metric, &new).await?;
        let (name, sites) = (&rebase_point.name, metric.readers());
        crate::feed::record(tx, REBASE_POINTS, name, Kind::Created, sites, &rebase_point).await?;
        Ok(pb::CreateRebasePointResponse {
            rebase_point: Some(rebase_point),
        })
    })
    .await
}

/// ListRebasePoints: one page of a metric's rebase points in period order.
pub(crate) async fn list(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::ListRebasePointsRequest,
) -> Result<pb::ListRebasePointsResponse, Error> {
    let pb::ListRebasePointsRequest {
        parent,
        page_size,
        page_token,
    } = req;
    let (rebase_points, next_page_token) =
        definitions::list_children(api, &ctx, &parent, page_size, &page_token, store::list).await?;
    Ok(pb::ListRebasePointsResponse {
        rebase_points,
        next_page_token,
    })
}

/// DeleteRebasePoint.
pub(crate) async fn delete(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::DeleteRebasePointRequest,
) -> Result<pb::DeleteRebasePointResponse, Error> {
    let pb::DeleteRebasePointRequest {
        name,
        allow_missing,
    } = req;
    definitions::delete_child(
        api,
        &ctx,
        &name,
        REBASE_POINTS,
        allow_missing,
        store::delete,
    )
    .await
    .map(|()| pb::DeleteRebasePointResponse {})
}

/// A validated rebase point.
#[derive(Debug)]
pub(crate) struct NewRebasePoint {
    pub(crate) id: String,
    pub(crate) period: NaiveDate,
    pub(crate) reason: String,
}

/// Reads CreateRebasePoint's fields; the period must start one of the metric's periods.
pub(crate) fn read(
    metric: &Metric,
    rebase_point_id: &str,
    rebase_point: Option<pb::RebasePoint>,
) -> Result<NewRebasePoint, Error> {
    let mut v = Violations::new();
    let id = v.check(names::id_or_new("rebase_point_id", rebase_point_id));
    let Some(r) = rebase_point else {
        return Err(v.missing("rebase_point"));
    };
    let pb::RebasePoint {
        name: _,
        period,
        reason,
        create_time: _,
    } = r;
    let period = v.check(required_date("rebase_point.period", period.as_ref()).map(Some));
    if let Some(p) = period
        && let Err(e) = metric.frequency.check_start(p)
    {
        v.add("rebase_point.period", e);
    }
    let reason = v.check(required_text("rebase_point.reason", &reason, 500));
    v.finish()?;
    Ok(NewRebasePoint {
        id,
        period: period.unwrap_or_default(),
        reason,
    })
}

/// The positions where stored rebase points start new groups of a series dated by
/// `periods` (ascending): each point at the first period on or after it; points at or
/// before the first period, or after the last, start none. Returns the positions and the
/// points applied.
pub(crate) fn positions(
    periods: &[NaiveDate],
    points: &[pb::RebasePoint],
) -> (Vec<usize>, Vec<pb::RebasePoint>) {
    // A point without a readable date applies nowhere.
    let dated: Vec<(NaiveDate, &pb::RebasePoint)> = points
        .iter()
        .filter_map(|p| Some((qi_platform::convert::calendar_date(p.period.as_ref()?)?, p)))
        .collect();
    let days: Vec<NaiveDate> = dated.iter().map(|(d, _)| *d).collect();
    qi_spc::series::rebase_positions(periods, &days)
        .into_iter()
        .map(|(position, i)| (position, dated[i].1.clone()))
        .unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use qi_platform::convert::date;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn point(day: NaiveDate) -> pb::RebasePoint {
        pb::RebasePoint {
            period: Some(date(day)),
            ..Default::default()
        }
    }

    #[test]
    fn rebase_points_start_groups_inside_the_series_only() {
        let periods = [d(2026, 1, 1), d(2026, 2, 1), d(2026, 4, 1), d(2026, 5, 1)];
        let (pos, applied) = positions(
            &periods,
            &[
                point(d(2025, 12, 1)),
                point(d(2026, 1, 1)),
                point(d(2026, 3, 1)),
                point(d(2026, 5, 1)),
                point(d(2026, 6, 1)),
            ],
        );
        assert_eq!(pos, [2, 3]);
        assert_eq!(applied.len(), 2);
        assert_eq!(
            positions(&[], &[point(d(2026, 1, 1))]).0,
            Vec::<usize>::new()
        );
    }
}
