//! The guard on a forwarded client stream (the HR sync): each message is checked against
//! the method's policy as it passes; a refused message or a broken inbound stream aborts the
//! upstream call, so the service sees a failed stream, never a clean end it might commit.

use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use qi_platform::Error;
use tokio::sync::oneshot;
use tonic::Status;
use tonic::codec::Streaming;

use crate::audit::{AuditEvent, AuditLog};
use crate::auth::Principal;
use crate::authorize;
use crate::policy::{Policy, RequestType};

/// The inbound half of a forwarded client stream: passes messages that satisfy the policy;
/// on a refused message or a broken stream it signals the abort and never ends cleanly.
pub(crate) struct Guarded {
    pub(crate) client: Option<IpAddr>,
    pub(crate) inbound: Streaming<Bytes>,
    pub(crate) policy: Policy,
    pub(crate) input: RequestType,
    pub(crate) principal: Principal,
    pub(crate) abort: Option<oneshot::Sender<Status>>,
    pub(crate) audit: AuditLog,
    pub(crate) path: String,
    pub(crate) trace_id: String,
}

impl tokio_stream::Stream for Guarded {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        if self.abort.is_none() {
            // Aborted: stay open until the call is dropped.
            return Poll::Pending;
        }
        let failure = match std::task::ready!(Pin::new(&mut self.inbound).poll_next(cx)) {
            None => return Poll::Ready(None),
            Some(Ok(message)) => {
                // Each message of the stream is bounded on its own, as the service decodes it.
                let decision = authorize::check_message(&self.policy, &self.principal, &message)
                    .and_then(|_| self.input.check_bounds(&message));
                match decision {
                    Ok(()) => return Poll::Ready(Some(message)),
                    Err(status) => {
                        let resource =
                            crate::wire::find_string(&message, &self.policy.resource_path)
                                .ok()
                                .flatten();
                        self.audit.record(AuditEvent {
                            time: chrono::Utc::now(),
                            subject: self.principal.subject.clone(),
                            method: self.path.clone(),
                            site: resource.as_deref().and_then(authorize::site_of),
                            resource,
                            allowed: false,
                            code: format!("{:?}", status.code()),
                            reason: status.message().to_owned(),
                            trace_id: self.trace_id.clone(),
                            client_address: self.client.map(|a| a.to_string()),
                            count: 1,
                        });
                        status
                    }
                }
            }
            // tonic's decoder says OUT_OF_RANGE; gRPC answers an oversized message
            // RESOURCE_EXHAUSTED, as the gateway does for unary calls.
            Some(Err(status)) if status.code() == tonic::Code::OutOfRange => {
                Error::ResourceExhausted {
                    message: status.message().to_owned(),
                    retry_after: None,
                }
                .into()
            }
            Some(Err(status)) => {
                tracing::debug!(error = %status.message(), "a client's stream broke");
                Error::Cancelled {
                    message: "the client's stream broke".into(),
                }
                .into()
            }
        };
        if let Some(abort) = self.abort.take() {
            let _ = abort.send(failure);
        }
        Poll::Pending
    }
}
