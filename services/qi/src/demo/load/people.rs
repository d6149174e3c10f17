//! Loads the trust's ESR mapping (`BatchUpsertEsrMappings`, as `qi hr map import` sends it)
//! and then the workforce through the HR sync (`SyncStaff`, the client stream `qi hr import`
//! uses), whose rows the mapping places.

use chrono::Days;
use qi_platform::convert::{date, timestamp};
use qi_proto::training as pb;

use super::client::{Api, call, failed};
use crate::demo::plan::people::{Person, Workforce, esr_mappings, rows};
use crate::demo::{AS_OF, Tally};

/// Creates the trust's ESR mapping, a site at a time; a second run finds it unchanged.
pub(crate) async fn map(api: &Api) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    for (site, mappings) in esr_mappings() {
        let req = pb::BatchUpsertEsrMappingsRequest {
            parent: format!("sites/{site}"),
            esr_mappings: mappings,
            request_id: String::new(),
        };
        let resp = call(|| {
            let mut c = api.training.clone();
            let r = req.clone();
            async move { c.batch_upsert_esr_mappings(r).await }
        })
        .await
        .map_err(|s| failed(s, "loading the demo's ESR mapping"))?;
        if let Some(r) = resp.rejected.first() {
            anyhow::bail!(
                "the ESR mapping refused {} demo mappings, e.g. {}: {}",
                resp.rejected.len(),
                r.field,
                r.reason
            );
        }
        tally.created += u64::try_from(resp.created).unwrap_or(0);
        tally.existing += u64::try_from(resp.updated + resp.unchanged).unwrap_or(0);
    }
    Ok(tally)
}

/// Rows per `SyncStaff` message, as `qi hr import` sends them.
const BATCH: usize = 1_000;

/// Streams the workforce to `SyncStaff` as one delta extract, dated [`AS_OF`] so that
/// sending it again changes nothing.
pub(crate) async fn sync(api: &Api, staff: &Workforce) -> anyhow::Result<pb::SyncStaffResponse> {
    let all: Vec<pb::EsrRow> = staff.people.iter().flat_map(rows).collect();
    let extract_time = AS_OF.and_hms_opt(6, 0, 0).map(|t| timestamp(t.and_utc()));
    let mut messages = vec![pb::SyncStaffRequest {
        mode: pb::SyncMode::Delta as i32,
        extract_id: "demo-esr-extract".into(),
        extract_time,
        rows: Vec::new(),
        complete: false,
    }];
    for chunk in all.chunks(BATCH) {
        messages.push(pb::SyncStaffRequest {
            rows: chunk.to_vec(),
            ..Default::default()
        });
    }
    if let Some(last) = messages.last_mut() {
        last.complete = true;
    }
    let resp = call(|| {
        let mut c = api.training.clone();
        let m = messages.clone();
        async move { c.sync_staff(tokio_stream::iter(m)).await }
    })
    .await
    .map_err(|s| failed(s, "syncing the demo staff"))?;
    if let Some(r) = resp.rejected.first() {
        anyhow::bail!(
            "the HR sync refused {} demo rows, e.g. row {} ({}): {} {}",
            resp.rejected.len(),
            r.row_number,
            r.employee_number,
            r.field,
            r.reason
        );
    }
    Ok(resp)
}

/// HR's last extract of the story, an hour after the workforce's: the demo's leaver
/// ([`crate::demo::plan::journey::leaver`]) has gone, ten days before [`AS_OF`]. Sent again,
/// it changes nothing, and the workforce's earlier extract no longer brings them back.
pub(crate) async fn leaver(api: &Api, person: &Person) -> anyhow::Result<()> {
    let gone = rows(person)
        .into_iter()
        .filter(|r| r.primary_assignment)
        .map(|r| pb::EsrRow {
            assignment_status: "Terminate Assignment".into(),
            person_type: "Ex-employee".into(),
            termination_date: Some(date(AS_OF - Days::new(10))),
            ..r
        })
        .collect();
    let messages = vec![pb::SyncStaffRequest {
        mode: pb::SyncMode::Delta as i32,
        extract_id: "demo-esr-leaver".into(),
        extract_time: AS_OF.and_hms_opt(7, 0, 0).map(|t| timestamp(t.and_utc())),
        rows: gone,
        complete: true,
    }];
    let resp = call(|| {
        let mut c = api.training.clone();
        let m = messages.clone();
        async move { c.sync_staff(tokio_stream::iter(m)).await }
    })
    .await
    .map_err(|s| failed(s, "syncing the demo's leaver"))?;
    anyhow::ensure!(
        resp.rejected.is_empty(),
        "the HR sync refused the demo's leaver: {:?}",
        resp.rejected
    );
    Ok(())
}
