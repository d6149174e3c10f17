//! The `audit_event` table: a batch written with one binary COPY, and the admin's filtered,
//! newest-first page.

use chrono::{DateTime, Utc};
use qi_platform::Error;
use qi_platform::paging::Page;
use sqlx::{PgConnection, PgPool};

use super::AuditEvent;

/// Writes a batch with one binary `COPY`: PostgreSQL's cheapest way in, with no text to
/// escape or timestamps to format on our side. A COPY is one statement, so a failed batch
/// leaves nothing behind and is retried whole.
pub(super) async fn write(pool: &PgPool, batch: &[AuditEvent]) -> Result<(), sqlx::Error> {
    let rows = copy_rows(batch);
    #[expect(
        clippy::disallowed_methods,
        reason = "the audit writer runs outside any call"
    )]
    let mut conn = pool.acquire().await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY audit_event (time, subject, method, site, resource, decision, code, reason,
                               trace_id, client_address, count)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    copy.send(rows).await?;
    copy.finish().await?;
    Ok(())
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The batch in `COPY … (FORMAT binary)`: a signature, then per row the field count and
/// each field as a length and its bytes (-1 for NULL), then -1.
fn copy_rows(batch: &[AuditEvent]) -> Vec<u8> {
    let mut out = Vec::with_capacity(19 + batch.len() * 200);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension
    for e in batch {
        out.extend_from_slice(&11i16.to_be_bytes());
        out.extend_from_slice(&8i32.to_be_bytes());
        let micros = e.time.timestamp_micros() - PG_EPOCH_MICROS;
        out.extend_from_slice(&micros.to_be_bytes());
        for field in [
            Some(e.subject.as_str()),
            Some(e.method.as_str()),
            e.site.as_deref(),
            e.resource.as_deref(),
            Some(if e.allowed { "allow" } else { "deny" }),
            Some(e.code.as_str()),
            Some(e.reason.as_str()),
            Some(e.trace_id.as_str()),
            e.client_address.as_deref(),
        ] {
            match field {
                Some(v) => text_field(&mut out, v),
                None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        out.extend_from_slice(&4i32.to_be_bytes());
        out.extend_from_slice(&i32::try_from(e.count).unwrap_or(i32::MAX).to_be_bytes());
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

/// One text field. PostgreSQL text cannot hold NUL: one in a request's name (caller
/// controlled) must not fail the whole batch, everyone's events, on every retry.
fn text_field(out: &mut Vec<u8>, value: &str) {
    let cleaned;
    let value = if value.contains('\0') {
        cleaned = value.replace('\0', "\u{fffd}");
        cleaned.as_str()
    } else {
        value
    };
    // Fields are clipped names and messages, far below 2 GiB.
    let len = i32::try_from(value.len()).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&value.as_bytes()[..usize::try_from(len).unwrap_or(0)]);
}

/// A stored event.
pub(super) struct Row {
    pub(super) id: i64,
    pub(super) time: DateTime<Utc>,
    pub(super) subject: String,
    pub(super) method: String,
    pub(super) site: Option<String>,
    pub(super) resource: Option<String>,
    pub(super) decision: String,
    pub(super) code: String,
    pub(super) reason: String,
    pub(super) trace_id: String,
    pub(super) client_address: Option<String>,
    pub(super) count: i32,
}

/// What ListAuditEvents filters by; empty or `None` filters nothing.
#[derive(Debug, Default)]
pub(super) struct Filter<'a> {
    pub(super) subject: &'a str,
    pub(super) site: &'a str,
    /// `allow` or `deny`.
    pub(super) decision: Option<&'static str>,
    pub(super) from: Option<DateTime<Utc>>,
    pub(super) before: Option<DateTime<Utc>>,
}

/// One page of events matching `filter`, newest first (by id: the order they were written).
pub(super) async fn list(
    conn: &mut PgConnection,
    filter: &Filter<'_>,
    page: &Page,
) -> Result<(Vec<Row>, String), Error> {
    let rows = sqlx::query_as!(
        Row,
        "SELECT id, time, subject, method, site, resource, decision, code, reason, trace_id,
                client_address, count
         FROM audit_event
         WHERE ($1 = '' OR subject = $1) AND ($2 = '' OR site = $2)
           AND ($3::text IS NULL OR decision = $3)
           AND ($4::timestamptz IS NULL OR time >= $4) AND ($5::timestamptz IS NULL OR time < $5)
           AND ($6::bigint IS NULL OR id < $6)
         ORDER BY id DESC LIMIT $7",
        filter.subject,
        filter.site,
        filter.decision,
        filter.from,
        filter.before,
        page.parsed_key::<i64>(0)?,
        page.limit(),
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(page.finish(rows, |r| vec![r.id.to_string()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool on a fresh database with the gateway's schema migrated.
    async fn pool() -> PgPool {
        qi_test_kit::migrated(crate::SCHEMA, &crate::MIGRATOR)
            .await
            .expect("a migrated test database")
    }

    /// An allowed call by `subject` at `site`, `minutes` past 2026-12-01 00:00 UTC.
    fn event(subject: &str, site: Option<&str>, allowed: bool, minutes: i64) -> AuditEvent {
        AuditEvent {
            time: DateTime::from_timestamp(1_796_083_200 + minutes * 60, 0).expect("a time"),
            subject: subject.into(),
            method: "/qi.training.v1.TrainingService/ListCourses".into(),
            site: site.map(Into::into),
            resource: site.map(|s| format!("sites/{s}")),
            allowed,
            code: if allowed { "Ok" } else { "PermissionDenied" }.into(),
            reason: String::new(),
            trace_id: format!("trace-{minutes}"),
            client_address: Some("10.0.0.1".into()),
            count: 1,
        }
    }

    async fn page(
        pool: &PgPool,
        filter: &Filter<'_>,
        size: i32,
        token: &str,
    ) -> Result<(Vec<Row>, String), Error> {
        let page = Page::parse(size, token, "")?;
        let mut tx = qi_platform::db::begin(pool).await?;
        list(&mut tx, filter, &page).await
    }

    fn subjects(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.subject.as_str()).collect()
    }

    #[tokio::test]
    async fn a_batch_is_written_whole_and_read_back_newest_first() -> anyhow::Result<()> {
        let pool = pool().await;
        let mut odd = event("a\0b", None, false, 1);
        odd.count = 52;
        odd.client_address = None;
        write(&pool, &[event("first", Some("BAS"), true, 0), odd]).await?;
        let (rows, next) = page(&pool, &Filter::default(), 10, "").await?;
        assert!(next.is_empty());
        assert_eq!(
            subjects(&rows),
            ["a\u{fffd}b", "first"],
            "NUL replaced, newest first"
        );
        let (odd, first) = (&rows[0], &rows[1]);
        assert_eq!(
            (
                odd.decision.as_str(),
                odd.count,
                odd.site.as_deref(),
                odd.client_address.as_deref()
            ),
            ("deny", 52, None, None)
        );
        assert_eq!(
            (
                first.decision.as_str(),
                first.site.as_deref(),
                first.resource.as_deref()
            ),
            ("allow", Some("BAS"), Some("sites/BAS"))
        );
        assert_eq!(first.time, event("first", None, true, 0).time);
        assert_eq!(
            (first.code.as_str(), first.trace_id.as_str()),
            ("Ok", "trace-0")
        );
        Ok(())
    }

    #[tokio::test]
    async fn filters_by_subject_site_decision_and_time_together() -> anyhow::Result<()> {
        let pool = pool().await;
        write(
            &pool,
            &[
                event("ann", Some("BAS"), true, 0),
                event("ann", Some("SOU"), true, 10),
                event("ann", Some("BAS"), false, 20),
                event("bob", Some("BAS"), true, 30),
            ],
        )
        .await?;
        let at = |m| event("", None, true, m).time;
        let count = |f: Filter<'static>| {
            let pool = pool.clone();
            async move { page(&pool, &f, 10, "").await.map(|(r, _)| r.len()) }
        };
        assert_eq!(
            count(Filter {
                subject: "ann",
                ..Filter::default()
            })
            .await?,
            3
        );
        assert_eq!(
            count(Filter {
                site: "BAS",
                ..Filter::default()
            })
            .await?,
            3
        );
        assert_eq!(
            count(Filter {
                decision: Some("deny"),
                ..Filter::default()
            })
            .await?,
            1
        );
        let window = Filter {
            from: Some(at(10)),
            before: Some(at(30)),
            ..Filter::default()
        };
        assert_eq!(
            count(window).await?,
            2,
            "from is inclusive, before exclusive"
        );
        let all = Filter {
            subject: "ann",
            site: "BAS",
            decision: Some("allow"),
            from: Some(at(0)),
            before: Some(at(1)),
        };
        assert_eq!(count(all).await?, 1);
        Ok(())
    }

    #[tokio::test]
    async fn pages_return_every_event_once_newest_first() -> anyhow::Result<()> {
        let pool = pool().await;
        let batch: Vec<_> = (0..7)
            .map(|m| event(&format!("s{m}"), None, true, m))
            .collect();
        write(&pool, &batch).await?;
        let (mut seen, mut token) = (Vec::new(), String::new());
        loop {
            let (rows, next) = page(&pool, &Filter::default(), 3, &token).await?;
            assert!(rows.len() <= 3);
            seen.extend(rows.iter().map(|r| r.id));
            if next.is_empty() {
                break;
            }
            token = next;
        }
        assert_eq!(seen.len(), 7);
        assert!(
            seen.windows(2).all(|w| w[0] > w[1]),
            "strictly newest first: {seen:?}"
        );
        Ok(())
    }

    #[test]
    fn copy_rows_are_postgres_binary_with_nul_replaced() {
        let event = AuditEvent {
            time: DateTime::from_timestamp(946_684_801, 0).unwrap(),
            subject: "a\0b".into(),
            method: "m".into(),
            site: None,
            resource: Some("r".into()),
            allowed: false,
            code: "c".into(),
            reason: "".into(),
            trace_id: "t".into(),
            client_address: Some("::1".into()),
            count: 3,
        };
        let rows = copy_rows(&[event]);
        let mut want = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0".to_vec();
        want.extend_from_slice(&[0, 11, 0, 0, 0, 8]);
        want.extend_from_slice(&1_000_000i64.to_be_bytes());
        want.extend_from_slice(&[0, 0, 0, 5, b'a', 0xef, 0xbf, 0xbd, b'b']);
        want.extend_from_slice(&[0, 0, 0, 1, b'm']);
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        want.extend_from_slice(&[0, 0, 0, 1, b'r']);
        want.extend_from_slice(&[0, 0, 0, 4, b'd', b'e', b'n', b'y']);
        want.extend_from_slice(&[0, 0, 0, 1, b'c']);
        want.extend_from_slice(&[0, 0, 0, 0]);
        want.extend_from_slice(&[0, 0, 0, 1, b't']);
        want.extend_from_slice(&[0, 0, 0, 3, b':', b':', b'1']);
        want.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 3]);
        want.extend_from_slice(&[0xff, 0xff]);
        assert_eq!(rows, want);
    }
}
