//! ListAuditEvents: the trail, newest first, filtered; for trust-wide admins.

use chrono::{DateTime, Utc};
use qi_platform::convert::instant;
use qi_platform::paging::Page;
use qi_platform::{AccessContext, Error};
use qi_proto::gateway as pb;

use super::store;
use crate::own::Own;

fn time(field: &str, t: Option<prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>, Error> {
    t.map(|t| {
        instant(&t)
            .ok_or_else(|| Error::invalid(field, "is not a valid time between 1900 and 2999"))
    })
    .transpose()
}

/// `ListAuditEvents`: newest first, filtered. The caller is a trust-wide admin (the
/// method's policy, checked by the gateway).
pub(crate) async fn list(
    own: &Own,
    _ctx: AccessContext,
    req: pb::ListAuditEventsRequest,
) -> Result<pb::ListAuditEventsResponse, Error> {
    let params = format!(
        "{}|{}|{}|{:?}|{:?}",
        req.subject, req.site, req.decision, req.start_time, req.end_time
    );
    let pb::ListAuditEventsRequest {
        parent,
        subject,
        site,
        decision,
        start_time,
        end_time,
        page_size,
        page_token,
    } = req;
    if parent != "trust" {
        return Err(Error::invalid(
            "parent",
            "the audit trail is trust-wide: use `trust`",
        ));
    }
    let decision = match pb::AuditDecision::try_from(decision) {
        Ok(pb::AuditDecision::Unspecified) => None,
        Ok(pb::AuditDecision::Allow) => Some("allow"),
        Ok(pb::AuditDecision::Deny) => Some("deny"),
        Err(_) => return Err(Error::invalid("decision", "choose ALLOW or DENY")),
    };
    let filter = store::Filter {
        subject: &subject,
        site: &site,
        decision,
        from: time("start_time", start_time)?,
        before: time("end_time", end_time)?,
    };
    let page = Page::parse(page_size, &page_token, &params)?;
    let mut tx = qi_platform::db::begin(own.gateway().pool()).await?;
    let (rows, next_page_token) = store::list(&mut tx, &filter, &page).await?;
    Ok(pb::ListAuditEventsResponse {
        audit_events: rows
            .into_iter()
            .map(|r| pb::AuditEvent {
                name: format!("trust/auditEvents/{}", r.id),
                time: Some(qi_platform::convert::timestamp(r.time)),
                subject: r.subject,
                method: r.method,
                site: r.site.unwrap_or_default(),
                resource: r.resource.unwrap_or_default(),
                decision: if r.decision == "allow" {
                    pb::AuditDecision::Allow
                } else {
                    pb::AuditDecision::Deny
                } as i32,
                code: r.code,
                reason: r.reason,
                trace_id: r.trace_id,
                client_address: r.client_address.unwrap_or_default(),
                count: r.count,
            })
            .collect(),
        next_page_token,
    })
}
