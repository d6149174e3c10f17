//! What the store tests share: a transaction on a migrated throwaway database, and stored
//! metrics to hang measurements, annotations and rebase points on.

use qi_platform::names::Owner;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};

pub(crate) use qi_test_kit::{day, site};

use crate::definitions::{Metric, NewMetric, Scope, Settings, ValueType, store};
use crate::periods::Frequency;

/// A pool on a fresh database with the `metrics` schema migrated.
pub(crate) async fn pool() -> anyhow::Result<PgPool> {
    qi_test_kit::migrated(crate::SCHEMA, &crate::MIGRATOR).await
}

/// A transaction on a fresh migrated database, as a call has one.
pub(crate) async fn transaction() -> anyhow::Result<Transaction<'static, Postgres>> {
    qi_test_kit::transaction(crate::SCHEMA, &crate::MIGRATOR).await
}

/// A monthly metric of `owner`, with no breakdown.
pub(crate) fn new_metric(owner: Owner, id: &str, value_type: ValueType) -> NewMetric {
    NewMetric {
        owner,
        id: id.to_owned(),
        frequency: Frequency::Month,
        value_type,
        scope: Scope::Owner,
        settings: Settings {
            display_name: format!("Metric {id}"),
            rate_per: 1.0,
            ..Settings::default()
        },
        request_id: String::new(),
    }
}

/// Stores [`new_metric`].
pub(crate) async fn metric(
    conn: &mut PgConnection,
    owner: Owner,
    id: &str,
    value_type: ValueType,
) -> anyhow::Result<Metric> {
    Ok(store::insert(conn, &new_metric(owner, id, value_type)).await?)
}
