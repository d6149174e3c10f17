//! Annotations (`{metric}/annotations/{id}`): notes drawn on a metric's chart; their RPCs
//! and the validated note.

use chrono::NaiveDate;
use qi_platform::changes::Kind;
use qi_platform::convert::{required_date, required_text};
use qi_platform::names;
use qi_platform::{AccessContext, Error, Violations, idempotency};
use qi_proto::metrics as pb;

use crate::MetricsApi;
use crate::definitions::{self, store::Lock};

pub(crate) mod store;

/// The collection id in annotation names.
pub(crate) const ANNOTATIONS: &str = "annotations";

/// CreateAnnotation: a note on a metric the caller may write, by the caller (idempotent by
/// `request_id`).
pub(crate) async fn create(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::CreateAnnotationRequest,
) -> Result<pb::CreateAnnotationResponse, Error> {
    idempotency::validate_request_id(&req.request_id)?;
    let new = read(&req.annotation_id, req.annotation.clone())?;
    let mut tx = qi_platform::db::begin(&api.pool).await?;
    let metric =
        definitions::resolve(&mut tx, &ctx, "parent", &req.parent, true, Lock::None).await?;
    idempotency::once(tx, &ctx, &req.request_id, &req, async |tx| {
        let annotation = store::insert(tx, &metric, &new, &ctx.subject).await?;
        let (name, sites) = (&annotation.name, metric.readers());
        crate::feed::record(tx, ANNOTATIONS, name, Kind::Created, sites, &annotation).await?;
        Ok(pb::CreateAnnotationResponse {
            annotation: Some(annotation),
        })
    })
    .await
}

/// ListAnnotations: one page of a metric's annotations in date order.
pub(crate) async fn list(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::ListAnnotationsRequest,
) -> Result<pb::ListAnnotationsResponse, Error> {
    let pb::ListAnnotationsRequest {
        parent,
        page_size,
        page_token,
    } = req;
    let (annotations, next_page_token) =
        definitions::list_children(api, &ctx, &parent, page_size, &page_token, store::list).await?;
    Ok(pb::ListAnnotationsResponse {
        annotations,
        next_page_token,
    })
}

/// DeleteAnnotation.
pub(crate) async fn delete(
    api: &MetricsApi,
    ctx: AccessContext,
    req: pb::DeleteAnnotationRequest,
) -> Result<pb::DeleteAnnotationResponse, Error> {
    let pb::DeleteAnnotationRequest {
        name,
        allow_missing,
    } = req;
    definitions::delete_child(api, &ctx, &name, ANNOTATIONS, allow_missing, store::delete)
        .await
        .map(|()| pb::DeleteAnnotationResponse {})
}

/// A validated annotation.
#[derive(Debug)]
pub(crate) struct NewAnnotation {
    pub(crate) id: String,
    pub(crate) date: NaiveDate,
    pub(crate) text: String,
    /// Flags the point of the date's period astronomical on run charts.
    pub(crate) astronomical: bool,
}

/// Reads CreateAnnotation's fields (the parent is resolved by the caller).
pub(crate) fn read(
    annotation_id: &str,
    annotation: Option<pb::Annotation>,
) -> Result<NewAnnotation, Error> {
    let mut v = Violations::new();
    let id = v.check(names::id_or_new("annotation_id", annotation_id));
    let Some(a) = annotation else {
        return Err(v.missing("annotation"));
    };
    let pb::Annotation {
        name: _,
        date,
        text,
        author: _,
        create_time: _,
        astronomical,
    } = a;
    let date = v
        .check(required_date("annotation.date", date.as_ref()).map(Some))
        .unwrap_or_default();
    let text = v.check(required_text("annotation.text", &text, 200));
    v.finish()?;
    Ok(NewAnnotation {
        id,
        date,
        text,
        astronomical,
    })
}
