//! The one error type of the services, and its one mapping to `tonic::Status`.
//!
//! Every status carries a `google.rpc.ErrorInfo` (reason, domain `qi`, and the dynamic values
//! of the message as metadata); `INVALID_ARGUMENT` also carries `google.rpc.BadRequest` field
//! violations. Internal errors are logged whole and answered with an opaque message. The
//! gateway answers its own refusals through the same mapping, so a caller reads one shape
//! of error whichever component refused.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The ErrorInfo domain of every QI error (also that of the contracts' bounds, refused in
/// the codec before a handler runs).
pub const DOMAIN: &str = qi_proto::limits::ERROR_DOMAIN;

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path in the request, e.g. `cohort.capacity`.
    pub field: String,
    /// What is wrong with it, for a developer.
    pub description: String,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; nothing was stored.
    #[error("invalid request: {}", violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; "))]
    InvalidArgument {
        /// The bad fields.
        violations: Vec<FieldViolation>,
    },
    /// The named resource does not exist (or is not where its name says).
    #[error("{name} not found")]
    NotFound {
        /// The resource name asked for.
        name: String,
    },
    /// A resource with that name (or unique key) exists already.
    #[error("{name} already exists")]
    AlreadyExists {
        /// The resource name or key that collided.
        name: String,
    },
    /// The system is not in a state that allows the call.
    #[error("{message}")]
    FailedPrecondition {
        /// `UPPER_SNAKE_CASE` reason.
        reason: &'static str,
        /// What to do about it.
        message: String,
    },
    /// A concurrency conflict (stale etag, reused request id); retry from a fresh read.
    #[error("{message}")]
    Aborted {
        /// What conflicted.
        message: String,
    },
    /// A position past what is kept (a change feed's cursor older than its retention).
    #[error("{message}")]
    OutOfRange {
        /// What is out of range, and where the caller may start instead.
        message: String,
        /// Where the caller may resume (`ErrorInfo` metadata `oldest_cursor`).
        oldest: String,
    },
    /// The caller may not do this.
    #[error("{message}")]
    PermissionDenied {
        /// What was refused.
        message: String,
    },
    /// A limit was reached.
    #[error("{message}")]
    ResourceExhausted {
        /// Which limit.
        message: String,
        /// The least the caller should wait before its next call can pass, when known
        /// (sent as `google.rpc.RetryInfo`).
        retry_after: Option<Duration>,
    },
    /// No or bad credentials (a bearer token at the gateway, the access context at a service).
    #[error("{message}")]
    Unauthenticated {
        /// What was wrong with them.
        message: String,
    },
    /// The method, or this form of calling it, is not served.
    #[error("{message}")]
    Unimplemented {
        /// What is not served.
        message: String,
    },
    /// The call was given up (its stream broke or was reset) before it was answered.
    #[error("{message}")]
    Cancelled {
        /// What broke.
        message: String,
    },
    /// Not serving for now, for a reason of ours the message states (the server is
    /// stopping, the audit trail cannot be written); retrying later may succeed.
    #[error("{message}")]
    NotServing {
        /// Why, and what to do.
        message: String,
    },
    /// A call malformed below its message (its gRPC framing): INTERNAL, as gRPC answers it,
    /// but the caller's doing, so not logged as a failure of ours.
    #[error("{message}")]
    Malformed {
        /// What was malformed.
        message: String,
    },
    /// The call's deadline passed (the database cancelled its statement at that moment).
    #[error("the call's deadline ({budget_ms} ms) passed before it was answered")]
    DeadlineExceeded {
        /// The budget the call was given.
        budget_ms: u128,
    },
    /// A dependency (the database) is unreachable; retrying later may succeed.
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A bug or an unexpected failure.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Error::InvalidArgument {
            violations: vec![FieldViolation {
                field: field.into(),
                description: description.into(),
            }],
        }
    }

    /// Permission denied for a site or resource.
    pub fn denied(message: impl Into<String>) -> Self {
        Error::PermissionDenied {
            message: message.into(),
        }
    }

    /// Not found.
    pub fn not_found(name: impl Into<String>) -> Self {
        Error::NotFound { name: name.into() }
    }

    /// The error of a message the codec refused before decoding it (a repeated field over
    /// its bound, `qi_proto::limits`), read back from its status; `None` for any other
    /// failure of a stream. A handler reading a client stream sees it as a failed read.
    pub fn refused_message(status: &Status) -> Option<Self> {
        if status.code() != Code::InvalidArgument {
            return None;
        }
        let violations: Vec<_> = status
            .get_details_bad_request()?
            .field_violations
            .into_iter()
            .map(|v| FieldViolation {
                field: v.field,
                description: v.description,
            })
            .collect();
        (!violations.is_empty()).then_some(Error::InvalidArgument { violations })
    }
}

/// Collects field violations so a request reports all its bad fields at once.
///
/// Only validation becomes a field violation: any other error met on the way (an access
/// denial, a lookup that failed) is kept whole and wins over the violations, so a refusal
/// is never answered as bad input.
#[derive(Debug, Default)]
pub struct Violations {
    violations: Vec<FieldViolation>,
    /// The first error that is not a validation error.
    failed: Option<Error>,
}

impl Violations {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a bad field.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(FieldViolation {
            field: field.into(),
            description: description.into(),
        });
    }

    /// Keeps the value of a check, recording its violation, or the first error of another
    /// kind. A failed check yields a placeholder (`T::default()`) that is never used:
    /// [`Violations::finish`] fails first.
    pub fn check<T: Default, E: Into<Error>>(&mut self, r: Result<T, E>) -> T {
        match r.map_err(Into::into) {
            Ok(v) => v,
            Err(Error::InvalidArgument { violations }) => {
                self.violations.extend(violations);
                T::default()
            }
            Err(other) => {
                self.failed.get_or_insert(other);
                T::default()
            }
        }
    }

    /// Ends validation at a missing required message: everything recorded so far plus it
    /// (or the error of another kind met first).
    pub fn missing(mut self, field: impl Into<String>) -> Error {
        if let Some(e) = self.failed {
            return e;
        }
        self.add(field, "is required");
        Error::InvalidArgument {
            violations: self.violations,
        }
    }

    /// `Ok` when nothing was recorded; an error of another kind before any violation.
    pub fn finish(self) -> Result<(), Error> {
        if let Some(e) = self.failed {
            Err(e)
        } else if self.violations.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidArgument {
                violations: self.violations,
            })
        }
    }
}

/// PostgreSQL's `query_canceled`: here, the `statement_timeout` that `db::begin` derives from
/// the call's deadline.
const QUERY_CANCELED: &str = "57014";

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if e.as_database_error().and_then(|d| d.code()).as_deref() == Some(QUERY_CANCELED) {
            return Error::DeadlineExceeded {
                budget_ms: crate::deadline::CallDeadline::current()
                    .map_or(0, |d| d.budget.as_millis()),
            };
        }
        // Connection-level failures are transient: the caller may retry.
        let transient = matches!(
            e,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
        ) || e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|c| c.starts_with("57P") || c.starts_with("08"));
        if transient {
            Error::Unavailable(e.into())
        } else {
            Error::Internal(e.into())
        }
    }
}

/// Bounds on what a status echoes. A status travels in HTTP/2 headers: one that quoted a
/// caller's 100 kB value whole would break the response (the client sees a protocol error)
/// instead of explaining the bad field.
const MAX_MESSAGE: usize = 1024;
const MAX_VIOLATIONS: usize = 20;
const MAX_DESCRIPTION: usize = 200;

/// `s` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
pub(crate) fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        let mut details = ErrorDetails::new();
        let message = bounded(&e.to_string(), MAX_MESSAGE);
        let (code, reason, metadata): (Code, &str, HashMap<String, String>) = match &e {
            Error::InvalidArgument { violations } => {
                for v in violations.iter().take(MAX_VIOLATIONS) {
                    details.add_bad_request_violation(
                        bounded(&v.field, MAX_DESCRIPTION),
                        bounded(&v.description, MAX_DESCRIPTION),
                    );
                }
                if violations.len() > MAX_VIOLATIONS {
                    details.add_bad_request_violation(
                        "request",
                        format!(
                            "{} more invalid fields not listed",
                            violations.len() - MAX_VIOLATIONS
                        ),
                    );
                }
                let fields = bounded(
                    &violations
                        .iter()
                        .map(|v| v.field.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    MAX_MESSAGE,
                );
                (
                    Code::InvalidArgument,
                    "INVALID_FIELDS",
                    HashMap::from([("fields".into(), fields)]),
                )
            }
            Error::NotFound { name } => (
                Code::NotFound,
                "RESOURCE_NOT_FOUND",
                HashMap::from([("name".into(), bounded(name, MAX_DESCRIPTION))]),
            ),
            Error::AlreadyExists { name } => (
                Code::AlreadyExists,
                "RESOURCE_EXISTS",
                HashMap::from([("name".into(), bounded(name, MAX_DESCRIPTION))]),
            ),
            Error::FailedPrecondition { reason, .. } => {
                (Code::FailedPrecondition, *reason, HashMap::new())
            }
            Error::Aborted { .. } => (Code::Aborted, "CONFLICT", HashMap::new()),
            Error::OutOfRange { oldest, .. } => (
                Code::OutOfRange,
                "CURSOR_EXPIRED",
                HashMap::from([("oldest_cursor".into(), oldest.clone())]),
            ),
            Error::PermissionDenied { .. } => {
                (Code::PermissionDenied, "PERMISSION_DENIED", HashMap::new())
            }
            Error::ResourceExhausted { retry_after, .. } => match retry_after {
                Some(wait) => {
                    details.set_retry_info(Some(*wait));
                    (
                        Code::ResourceExhausted,
                        "RATE_LIMITED",
                        HashMap::from([("retry_after_ms".into(), wait.as_millis().to_string())]),
                    )
                }
                None => (Code::ResourceExhausted, "LIMIT_REACHED", HashMap::new()),
            },
            Error::Unauthenticated { .. } => {
                (Code::Unauthenticated, "UNAUTHENTICATED", HashMap::new())
            }
            Error::Unimplemented { .. } => (Code::Unimplemented, "NOT_SERVED", HashMap::new()),
            Error::Cancelled { .. } => (Code::Cancelled, "CANCELLED", HashMap::new()),
            Error::Malformed { .. } => (Code::Internal, "MALFORMED_CALL", HashMap::new()),
            Error::NotServing { .. } => (Code::Unavailable, "NOT_SERVING", HashMap::new()),
            Error::DeadlineExceeded { budget_ms } => (
                Code::DeadlineExceeded,
                "DEADLINE_EXCEEDED",
                HashMap::from([("budget_ms".into(), budget_ms.to_string())]),
            ),
            Error::Unavailable(source) => {
                tracing::warn!(error = ?source, "dependency unavailable");
                (Code::Unavailable, "DEPENDENCY_UNAVAILABLE", HashMap::new())
            }
            Error::Internal(source) => {
                tracing::error!(error = ?source, "internal error");
                (Code::Internal, "INTERNAL", HashMap::new())
            }
        };
        if !matches!(e, Error::Internal(_) | Error::Unavailable(_)) {
            tracing::debug!(%code, %message, "client error");
        }
        details.set_error_info(reason, DOMAIN, metadata);
        Status::with_error_details(code, message, details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_argument_names_every_bad_field() {
        let mut v = Violations::new();
        v.add("cohort.capacity", "must be 1 to 500");
        v.add("parent", "must be `sites/{site}` or `trust`");
        let status = Status::from(v.finish().unwrap_err());
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().unwrap();
        let fields: Vec<_> = bad
            .field_violations
            .iter()
            .map(|f| f.field.as_str())
            .collect();
        assert_eq!(fields, ["cohort.capacity", "parent"]);
        assert!(status.message().contains("cohort.capacity"));
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.domain, DOMAIN);
    }

    #[test]
    fn a_denial_met_during_validation_stays_a_denial() {
        let mut v = Violations::new();
        v.add("filter.start_date", "is not a date");
        v.check(Err::<(), _>(Error::denied("no access to site SOU")));
        let status = Status::from(v.finish().unwrap_err());
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(status.get_details_bad_request().is_none());

        let mut v = Violations::new();
        v.check(Err::<(), _>(Error::denied("no access to site SOU")));
        assert_eq!(
            Status::from(v.missing("filter")).code(),
            Code::PermissionDenied
        );
    }

    #[test]
    fn a_message_refused_by_the_codec_reads_back_as_the_same_invalid_field() {
        let refused = Status::from(qi_proto::limits::TooMany {
            field: "rows".into(),
            max: 5,
        });
        let e = Error::refused_message(&refused).unwrap();
        let status = Status::from(e);
        assert_eq!(status.code(), Code::InvalidArgument);
        let bad = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(bad[0].field, "rows");
        assert!(Error::refused_message(&Status::cancelled("cut")).is_none());
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let status = Status::from(Error::Internal(anyhow::anyhow!("password=hunter2")));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
    }

    #[test]
    fn a_huge_bad_value_is_quoted_in_part_and_many_bad_fields_are_summed_up() {
        let mut v = Violations::new();
        for i in 0..500 {
            v.add(format!("measurements[{i}].value"), "x".repeat(100_000));
        }
        let status = Status::from(v.finish().unwrap_err());
        assert!(status.message().len() <= MAX_MESSAGE + 3);
        let bad = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(bad.len(), MAX_VIOLATIONS + 1);
        assert_eq!(bad[0].field, "measurements[0].value");
        assert!(bad[0].description.len() <= MAX_DESCRIPTION + 3);
        assert!(bad[MAX_VIOLATIONS].description.starts_with("480 more"));
    }

    #[test]
    fn a_rate_limit_says_when_to_retry() {
        let status = Status::from(Error::ResourceExhausted {
            message: "too many calls".into(),
            retry_after: Some(Duration::from_millis(250)),
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        let info = status.get_details_error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("RATE_LIMITED", DOMAIN)
        );
        assert_eq!(info.metadata["retry_after_ms"], "250");
        let retry = status.get_details_retry_info().unwrap();
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(250)));
    }

    #[test]
    fn a_timed_out_pool_is_unavailable() {
        let status = Status::from(Error::from(sqlx::Error::PoolTimedOut));
        assert_eq!(status.code(), Code::Unavailable);
    }
}
