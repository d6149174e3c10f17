//! Part of the `hr-sync` scenario: `ImportCompletions` of a historic register through the
//! gateway, as `qi hr completions import` sends it (calls of 5,000 rows, one after another),
//! against a raw `COPY` of the same rows into a table shaped like `training.completion`
//! with its indexes and its foreign keys (to `staff` and `course`: a completion must name
//! a person and a course, and checking that is work any loader of the register does). The
//! `COPY` without the keys is reported too. Run after the syncs, for people they loaded.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context as _;
use chrono::{Days, NaiveDate};
use qi_proto::training as pb;
use qi_proto::training::training_service_client::TrainingServiceClient;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

use super::figures::put;
use super::headers::with_header;
use super::{Effort, Target};

/// Rows of one call, as the CLI sends them (the contract's bound).
const CALL_ROWS: usize = 5_000;

/// `ImportCompletions` of `n` completions (`n` at most the people the last sync loaded,
/// employee numbers from 10,000,000) against a `COPY` of the same rows.
pub(super) async fn import(
    admin: &PgPool,
    client: &TrainingServiceClient<tonic::transport::Channel>,
    token: &tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
    effort: Effort,
    f: &mut Map<String, Value>,
    targets: &mut Vec<Target>,
) -> anyhow::Result<()> {
    let n = effort.completion_rows;
    let rows = register(n);
    let text = copy_text(&rows);
    for statement in [
        "CREATE TABLE bench.completion_copy (LIKE training.completion INCLUDING ALL)",
        "ALTER TABLE bench.completion_copy
             ADD FOREIGN KEY (employee_number) REFERENCES training.staff,
             ADD FOREIGN KEY (course_id) REFERENCES training.course",
        "CREATE TABLE bench.completion_bare (LIKE training.completion INCLUDING ALL)",
    ] {
        sqlx::query(statement).execute(admin).await?;
    }
    let (mut import_s, mut copy_s, mut bare_s) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..effort.rounds {
        eprintln!(
            "  import {n} completions: round {}/{}",
            round + 1,
            effort.rounds
        );
        sqlx::query("DELETE FROM training.completion WHERE source_reference LIKE 'bench %'")
            .execute(admin)
            .await?;
        let t = Instant::now();
        let mut inserted = 0;
        for chunk in rows.chunks(CALL_ROWS) {
            let resp = client
                .clone()
                .import_completions(with_header(
                    pb::ImportCompletionsRequest {
                        parent: "sites/-".into(),
                        completions: chunk.to_vec(),
                        request_id: uuid::Uuid::new_v4().to_string(),
                    },
                    "authorization",
                    token,
                ))
                .await
                .context("ImportCompletions")?
                .into_inner();
            anyhow::ensure!(
                resp.rejected.is_empty(),
                "completions refused: {:?}",
                resp.rejected.first()
            );
            inserted += resp.inserted as usize;
        }
        import_s.push(t.elapsed().as_secs_f64());
        anyhow::ensure!(inserted == n, "the import inserted {inserted} of {n}");

        copy_s.push(copy_into(admin, KEYED, &text).await?);
        bare_s.push(copy_into(admin, BARE, &text).await?);
    }
    let import = put(f, &format!("ImportCompletions {n} rows s"), &import_s);
    let copy = put(f, &format!("COPY {n} completions s"), &copy_s);
    let bare = put(
        f,
        &format!("COPY {n} completions, no foreign keys s"),
        &bare_s,
    );
    f.insert(
        format!("ImportCompletions/COPY {n} rows"),
        json!(import / copy),
    );
    f.insert(
        format!("ImportCompletions/COPY without keys {n} rows"),
        json!(import / bare),
    );
    if n == 100_000 {
        targets.push(Target::at_most(
            "ImportCompletions 100,000 rows / COPY",
            2.0,
            import / copy,
        ));
    }
    sqlx::query("DELETE FROM training.completion WHERE source_reference LIKE 'bench %'")
        .execute(admin)
        .await?;
    Ok(())
}

/// The baseline tables: (emptied by, copied into by).
type Baseline = (&'static str, &'static str);
const KEYED: Baseline = (
    "TRUNCATE bench.completion_copy",
    "COPY bench.completion_copy (id, employee_number, course_id, completion_date, change_seq,
         source, source_reference, imported_by) FROM STDIN",
);
const BARE: Baseline = (
    "TRUNCATE bench.completion_bare",
    "COPY bench.completion_bare (id, employee_number, course_id, completion_date, change_seq,
         source, source_reference, imported_by) FROM STDIN",
);

/// Empties a baseline table and copies `text` into it: the seconds the `COPY` took.
async fn copy_into(admin: &PgPool, (empty, copy): Baseline, text: &str) -> anyhow::Result<f64> {
    sqlx::query(empty).execute(admin).await?;
    #[expect(
        clippy::disallowed_methods,
        reason = "the raw-SQL baseline, outside any call"
    )]
    let mut conn = admin.acquire().await?;
    let t = Instant::now();
    let mut copy = conn.copy_in_raw(copy).await?;
    copy.send(text.as_bytes()).await?;
    copy.finish().await?;
    Ok(t.elapsed().as_secs_f64())
}

/// A historic register of `n` QSIR Fundamentals days, one per person, in 2019 and 2020.
fn register(n: usize) -> Vec<pb::ImportedCompletion> {
    let first = NaiveDate::from_ymd_opt(2019, 1, 7).unwrap_or_default();
    (0..n)
        .map(|i| pb::ImportedCompletion {
            employee_number: format!("{}", 10_000_000 + i),
            course: "QSIR-FUND".into(),
            completion_date: Some(qi_platform::convert::date(
                first + Days::new((i % 700) as u64),
            )),
            source: pb::CompletionSource::HistoricRegister as i32,
            source_reference: format!("bench register row {i}"),
            previous_organisation: String::new(),
            expiry_date: None,
        })
        .collect()
}

/// The same rows as `COPY` text for the columns the baseline names.
fn copy_text(rows: &[pb::ImportedCompletion]) -> String {
    let mut out = String::with_capacity(rows.len() * 120);
    for (i, r) in rows.iter().enumerate() {
        let d = r.completion_date.unwrap_or_default();
        let _ = writeln!(
            out,
            "{}\t{}\tqsir-fund\t{:04}-{:02}-{:02}\t{i}\thistoric\t{}\tbench-hr",
            uuid::Uuid::new_v4(),
            r.employee_number,
            d.year,
            d.month,
            d.day,
            r.source_reference
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_register_is_one_dated_completion_per_person_and_copyable() {
        let rows = register(1_000);
        assert!(rows.iter().all(|r| r.completion_date.is_some()));
        assert_eq!(rows[999].employee_number, "10000999");
        let text = copy_text(&rows);
        assert_eq!(text.lines().count(), 1_000);
        assert!(text.lines().all(|l| l.split('\t').count() == 8));
    }
}
