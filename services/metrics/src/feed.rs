//! This service's change feed (`WatchChanges`, see [`qi_platform::changes`]): which
//! collections it carries and how a stored change becomes the contract's message. Every
//! write records its change with [`record`] (or [`record_deleted`]) in its transaction.

pub(crate) use qi_platform::changes::{record_change as record, record_deleted};

qi_platform::change_feed!(crate::MetricsApi, qi_proto::metrics, {
    "metrics" => Metric,
    "measurements" => Measurement,
    "annotations" => Annotation,
    "rebasePoints" => RebasePoint,
}, render: Some(render));

/// The resources of `many` changes as they are now, for the feed to deliver: the
/// measurements an ingest wrote (`measurements::record`).
fn render<'a>(
    conn: &'a mut sqlx::PgConnection,
    collection: &'a str,
    names: &'a [String],
) -> qi_platform::changes::Rendering<'a> {
    use prost::Message as _;
    use qi_platform::changes::Rendered;
    Box::pin(async move {
        match collection {
            "measurements" => {
                // `…/metrics/{metric}/measurements/{id}`: the id is the last segment.
                let ids: Vec<i64> = names
                    .iter()
                    .filter_map(|n| n.rsplit('/').next()?.parse().ok())
                    .collect();
                let found = crate::measurements::store::by_ids(conn, &ids).await?;
                Ok(found
                    .into_iter()
                    .map(|(m, site)| Rendered {
                        name: m.name.clone(),
                        site,
                        payload: m.encode_to_vec(),
                    })
                    .collect())
            }
            other => Err(qi_platform::changes::unknown_collection(other)),
        }
    })
}

#[cfg(test)]
mod tests {
    use pb::watch_changes_response::Resource;
    use qi_platform::{AccessContext, SiteCode, SiteScope};
    use qi_proto::google::r#type::Date;
    use qi_proto::metrics as pb;

    use super::*;
    use crate::MetricsApi;
    use crate::testing::pool;

    /// One row of the outbox, as a write left it.
    #[derive(Debug, sqlx::FromRow)]
    struct Row {
        collection: String,
        name: String,
        kind: String,
        sites: Option<Vec<String>>,
        payload: Option<Vec<u8>>,
    }

    async fn outbox(pool: &sqlx::PgPool) -> anyhow::Result<Vec<Row>> {
        Ok(sqlx::query_as(
            "SELECT collection, name, kind, sites, payload FROM changes ORDER BY pos, id",
        )
        .fetch_all(pool)
        .await?)
    }

    /// A change in a line: its collection, name, kind and the sites that see it.
    fn line(row: &Row) -> String {
        let sites = row
            .sites
            .as_ref()
            .map_or("(everyone)".into(), |s| s.join(","));
        format!("{} {} {} {sites}", row.collection, row.name, row.kind)
    }

    /// The resource a change carries.
    fn resource(row: &Row) -> Resource {
        let bytes = row.payload.as_deref().expect("a payload");
        decode(&row.collection, bytes).expect("a stored resource")
    }

    /// A trust-wide caller.
    fn caller() -> AccessContext {
        AccessContext {
            subject: "someone".into(),
            roles: vec!["improvement_team".into()],
            sites: SiteScope::TrustWide,
            method: "/qi.metrics.v1.MetricService/CreateMetric".into(),
            employee: None,
            employee_claim: Default::default(),
            token_expiry: None,
        }
    }

    /// A pool on a fresh schema, and the service over it for the trust's three sites.
    async fn api() -> anyhow::Result<(sqlx::PgPool, MetricsApi)> {
        let pool = pool().await?;
        let sites = ["BAS", "BRM", "SOU"].map(|s| SiteCode::parse(s).expect("a site code"));
        let api = MetricsApi::new(pool.clone(), &sites);
        Ok((pool, api))
    }

    /// CreateMetric of a count, "Falls", under `parent`.
    fn create_metric(
        parent: &str,
        id: &str,
        location: pb::LocationBreakdown,
        frequency: pb::MetricFrequency,
    ) -> pb::CreateMetricRequest {
        pb::CreateMetricRequest {
            parent: parent.into(),
            metric_id: id.into(),
            metric: Some(pb::Metric {
                display_name: "Falls".into(),
                kind: pb::MetricKind::Outcome as i32,
                improvement_direction: pb::ImprovementDirection::Decrease as i32,
                frequency: frequency as i32,
                value_type: pb::MetricValueType::Count as i32,
                location_breakdown: location as i32,
                ..Default::default()
            }),
            request_id: String::new(),
        }
    }

    /// A caller of one site.
    fn site_caller(site: &str) -> AccessContext {
        AccessContext {
            sites: SiteScope::from_claim(&[site.to_owned()]).expect("a sites claim"),
            ..caller()
        }
    }

    fn month(year: i32, month: i32) -> Option<Date> {
        Some(Date {
            year,
            month,
            day: 1,
        })
    }

    /// A count of `value` for the month starting `period` at `site`.
    fn count(period: Option<Date>, site: &str, value: f64) -> pb::Measurement {
        pb::Measurement {
            period,
            site: site.into(),
            value: Some(value),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn each_write_records_its_change_as_its_readers_see_it_and_a_failed_one_nothing()
    -> anyhow::Result<()> {
        let (pool, api) = api().await?;
        let ctx = caller();

        // A trust-wide metric recorded by site: created, then renamed.
        let create = |parent: &str, id: &str, location: pb::LocationBreakdown| {
            create_metric(parent, id, location, pb::MetricFrequency::Month)
        };
        let created = crate::definitions::create(
            &api,
            ctx.clone(),
            create("trust", "falls", pb::LocationBreakdown::Site),
        )
        .await?
        .metric
        .expect("a metric");
        let name = created.name.clone();
        assert_eq!(name, "trust/metrics/falls");
        let rename = |etag: &str, display_name: &str| pb::UpdateMetricRequest {
            metric: Some(pb::Metric {
                name: name.clone(),
                etag: etag.into(),
                display_name: display_name.into(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        };
        let updated = crate::definitions::update(&api, ctx.clone(), rename("", "Inpatient falls"))
            .await?
            .metric
            .expect("a metric");

        // Writes that fail record nothing: invalid input, a stale etag, a taken name.
        let mut invalid = create("trust", "bad", pb::LocationBreakdown::Site);
        if let Some(m) = invalid.metric.as_mut() {
            m.display_name = " ".into();
        }
        assert!(
            crate::definitions::create(&api, ctx.clone(), invalid)
                .await
                .is_err()
        );
        let taken = create("trust", "falls", pb::LocationBreakdown::Site);
        assert!(
            crate::definitions::create(&api, ctx.clone(), taken)
                .await
                .is_err()
        );
        for req in [rename(&created.etag, "Stale"), rename("", " ")] {
            assert!(
                crate::definitions::update(&api, ctx.clone(), req)
                    .await
                    .is_err()
            );
        }
        let batch = |measurements: Vec<pb::Measurement>| pb::BatchCreateMeasurementsRequest {
            parent: name.clone(),
            measurements,
            request_id: String::new(),
        };
        // One bad measurement refuses the whole batch (a count below 0).
        let refused = batch(vec![
            count(month(2025, 1), "sites/BAS", 3.0),
            count(month(2025, 1), "sites/SOU", -1.0),
        ]);
        assert!(
            crate::measurements::batch_create(&api, ctx.clone(), refused)
                .await
                .is_err()
        );
        let rows = outbox(&pool).await?;
        let seen: Vec<_> = rows.iter().map(line).collect();
        assert_eq!(
            seen,
            [
                "metrics trust/metrics/falls created (everyone)",
                "metrics trust/metrics/falls updated (everyone)",
            ]
        );
        for (row, returned) in rows.iter().zip([&created, &updated]) {
            assert_eq!(resource(row), Resource::Metric(returned.clone()));
        }

        // A batch at two sites: each measurement seen by its own site's callers alone, and
        // the metric, which now has measurements, by everyone.
        let first = batch(vec![
            count(month(2025, 1), "sites/BAS", 3.0),
            count(month(2025, 1), "sites/SOU", 5.0),
        ]);
        let outcome = crate::measurements::batch_create(&api, ctx.clone(), first).await?;
        assert_eq!(outcome.created_count, 2);
        let listed = crate::measurements::list(
            &api,
            ctx.clone(),
            pb::ListMeasurementsRequest {
                parent: name.clone(),
                ..Default::default()
            },
        )
        .await?
        .measurements;
        let [bas, sou] = [&listed[0], &listed[1]];
        assert_eq!(
            (bas.site.as_str(), sou.site.as_str()),
            ("sites/BAS", "sites/SOU")
        );
        // Re-sent as it was: nothing changes, nothing is recorded; one value changed: that
        // measurement alone, updated.
        let resent = batch(vec![
            count(month(2025, 1), "sites/BAS", 3.0),
            count(month(2025, 1), "sites/SOU", 5.0),
        ]);
        let outcome = crate::measurements::batch_create(&api, ctx.clone(), resent).await?;
        assert_eq!(outcome.unchanged_count, 2);
        let changed = batch(vec![
            count(month(2025, 1), "sites/BAS", 3.0),
            count(month(2025, 1), "sites/SOU", 6.0),
        ]);
        let outcome = crate::measurements::batch_create(&api, ctx.clone(), changed).await?;
        assert_eq!((outcome.updated_count, outcome.unchanged_count), (1, 1));
        let now = crate::definitions::get(
            &api,
            ctx.clone(),
            pb::GetMetricRequest { name: name.clone() },
        )
        .await?
        .metric
        .expect("a metric");
        assert!(now.has_measurements);
        let after = crate::measurements::list(
            &api,
            ctx.clone(),
            pb::ListMeasurementsRequest {
                parent: name.clone(),
                ..Default::default()
            },
        )
        .await?
        .measurements;
        let rows = outbox(&pool).await?;
        let seen: Vec<_> = rows[2..].iter().map(line).collect();
        // The measurements are listed (`many`), fetched by the callers of any of their sites;
        // the metric is copied, for everyone.
        assert_eq!(
            seen,
            [
                "measurements  many BAS,SOU".to_owned(),
                format!("metrics {name} updated (everyone)"),
                "measurements  many SOU".to_owned(),
            ]
        );
        assert_eq!(resource(&rows[3]), Resource::Metric(now));
        // Each delivered as ListMeasurements shows it now, to its own site's callers alone:
        // rendered at delivery, SOU's creation already carries the later value.
        let changes = |messages: Vec<pb::WatchChangesResponse>| -> Vec<_> {
            messages
                .into_iter()
                .filter(|m| m.resource_name.contains("/measurements/"))
                .map(|m| {
                    let Some(Resource::Measurement(measurement)) = &m.resource else {
                        panic!("not a measurement: {m:?}")
                    };
                    assert_eq!(m.resource_name, measurement.name);
                    (m.kind(), measurement.clone())
                })
                .collect()
        };
        use qi_proto::common::ChangeKind::{Created, Updated};
        assert_eq!(
            changes(backlog(&api, &ctx).await?),
            [
                (Created, bas.clone()),
                (Created, after[1].clone()),
                (Updated, after[1].clone()),
            ]
        );
        assert_eq!(
            changes(backlog(&api, &site_caller("BAS")).await?),
            [(Created, bas.clone())]
        );
        assert_eq!(
            changes(backlog(&api, &site_caller("SOU")).await?),
            [(Created, after[1].clone()), (Updated, after[1].clone())]
        );
        assert_eq!((&after[0], after[1].value), (bas, Some(6.0)));
        assert_eq!(after[1].name, sou.name);

        // A site's metric and what hangs off it are that site's; a trust-wide metric's
        // annotations are everyone's. A retried create (same request id) records nothing
        // more; a delete records the name alone.
        let site_metric = crate::definitions::create(
            &api,
            ctx.clone(),
            create("sites/BAS", "waits", pb::LocationBreakdown::None),
        )
        .await?
        .metric
        .expect("a metric");
        let note = |parent: &str, request_id: &str| pb::CreateAnnotationRequest {
            parent: parent.into(),
            annotation_id: "pdsa-1".into(),
            annotation: Some(pb::Annotation {
                date: Some(Date {
                    year: 2025,
                    month: 1,
                    day: 14,
                }),
                text: "New falls bundle".into(),
                ..Default::default()
            }),
            request_id: request_id.into(),
        };
        let request_id = uuid::Uuid::now_v7().to_string();
        let noted = crate::annotations::create(&api, ctx.clone(), note(&name, &request_id))
            .await?
            .annotation
            .expect("an annotation");
        let replayed = crate::annotations::create(&api, ctx.clone(), note(&name, &request_id))
            .await?
            .annotation
            .expect("an annotation");
        assert_eq!(replayed, noted);
        let site_note = crate::annotations::create(&api, ctx.clone(), note(&site_metric.name, ""))
            .await?
            .annotation
            .expect("an annotation");
        for name in [&noted.name, &site_note.name] {
            let delete = pb::DeleteAnnotationRequest {
                name: name.clone(),
                allow_missing: true,
            };
            crate::annotations::delete(&api, ctx.clone(), delete.clone()).await?;
            // Gone already: nothing more to record.
            crate::annotations::delete(&api, ctx.clone(), delete).await?;
        }
        let point = crate::rebase_points::create(
            &api,
            ctx.clone(),
            pb::CreateRebasePointRequest {
                parent: site_metric.name.clone(),
                rebase_point_id: "bundle".into(),
                rebase_point: Some(pb::RebasePoint {
                    period: month(2025, 2),
                    reason: "New falls bundle".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        )
        .await?
        .rebase_point
        .expect("a rebase point");
        crate::rebase_points::delete(
            &api,
            ctx.clone(),
            pb::DeleteRebasePointRequest {
                name: point.name.clone(),
                allow_missing: false,
            },
        )
        .await?;
        let rows = outbox(&pool).await?;
        let seen: Vec<_> = rows[5..].iter().map(line).collect();
        let waits = &site_metric.name;
        assert_eq!(
            seen,
            [
                format!("metrics {waits} created BAS"),
                format!("annotations {} created (everyone)", noted.name),
                format!("annotations {} created BAS", site_note.name),
                format!("annotations {} deleted (everyone)", noted.name),
                format!("annotations {} deleted BAS", site_note.name),
                format!("rebasePoints {} created BAS", point.name),
                format!("rebasePoints {} deleted BAS", point.name),
            ]
        );
        assert_eq!(resource(&rows[6]), Resource::Annotation(noted));
        assert_eq!(resource(&rows[7]), Resource::Annotation(site_note));
        assert_eq!(resource(&rows[10]), Resource::RebasePoint(point));
        for deleted in [&rows[8], &rows[9], &rows[11]] {
            assert_eq!(deleted.payload, None);
        }
        Ok(())
    }

    /// An ingest's outbox footprint is a row per 1,000 measurements, not a copy of each
    /// (before, 100,000 measurements took 4.38x a COPY), and the feed still delivers every
    /// one of them, to its site's callers alone.
    #[tokio::test]
    async fn an_ingest_records_a_row_per_thousand_measurements_and_the_feed_delivers_each()
    -> anyhow::Result<()> {
        let (pool, api) = api().await?;
        let ctx = caller();
        let create = create_metric(
            "trust",
            "waits",
            pb::LocationBreakdown::Site,
            pb::MetricFrequency::Day,
        );
        let metric = crate::definitions::create(&api, ctx.clone(), create)
            .await?
            .metric
            .expect("a metric");
        const N: usize = 2_500;
        let start = chrono::NaiveDate::from_ymd_opt(2015, 1, 1).expect("a date");
        let measurements = (0..N)
            .map(|i| {
                let day = start + chrono::Days::new(i as u64);
                let site = if i % 2 == 0 { "sites/BAS" } else { "sites/SOU" };
                count(Some(qi_platform::convert::date(day)), site, 1.0)
            })
            .collect();
        let req = pb::BatchCreateMeasurementsRequest {
            parent: metric.name.clone(),
            measurements,
            request_id: String::new(),
        };
        let outcome = crate::measurements::batch_create(&api, ctx.clone(), req).await?;
        assert_eq!(outcome.created_count, N as i32);
        let rows: Vec<_> = outbox(&pool)
            .await?
            .into_iter()
            .filter(|r| r.collection == "measurements")
            .collect();
        assert_eq!(
            rows.len(),
            N.div_ceil(1_000),
            "{:?}",
            rows.iter().map(line).collect::<Vec<_>>()
        );
        let delivered = |messages: Vec<pb::WatchChangesResponse>| -> Vec<String> {
            messages
                .into_iter()
                .filter(|m| m.collection == "measurements")
                .map(|m| match m.resource {
                    Some(Resource::Measurement(measurement)) => measurement.site,
                    other => panic!("not a measurement: {other:?}"),
                })
                .collect()
        };
        assert_eq!(delivered(backlog(&api, &ctx).await?).len(), N);
        let bas = delivered(backlog(&api, &site_caller("BAS")).await?);
        assert_eq!(bas.len(), N / 2);
        assert!(bas.iter().all(|site| site == "sites/BAS"), "{bas:?}");
        Ok(())
    }
}
