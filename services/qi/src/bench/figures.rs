//! Recording a scenario's figures: a median over the rounds with its spread, the errors
//! the rounds met, and the CPU time per call of each part of the deployment.

use serde_json::{Map, Value, json};

use super::load::{LoadStats, summarize};

/// Records the median of `rounds` under `name`, and their spread under `name (min..max)`;
/// returns the median.
pub(super) fn put(figures: &mut Map<String, Value>, name: &str, rounds: &[f64]) -> f64 {
    let (median, min, max) = summarize(rounds);
    figures.insert(name.to_owned(), json!(median));
    figures.insert(
        format!("{name} (min..max)"),
        json!(format!("{min:.3}..{max:.3}")),
    );
    median
}

/// [`put`] of one statistic of each load round.
pub(super) fn put_stat(
    figures: &mut Map<String, Value>,
    name: &str,
    rounds: &[LoadStats],
    stat: fn(&LoadStats) -> f64,
) -> f64 {
    put(figures, name, &rounds.iter().map(stat).collect::<Vec<_>>())
}

/// [`put`] of one figure of each pair of adjacent rounds: the first way's round `i` against
/// the second way's round `i`, which shared the machine's conditions.
pub(super) fn put_pairs(
    figures: &mut Map<String, Value>,
    name: &str,
    (first, second): (&[LoadStats], &[LoadStats]),
    of: fn(&LoadStats, &LoadStats) -> f64,
) -> f64 {
    let pairs: Vec<f64> = first.iter().zip(second).map(|(a, b)| of(a, b)).collect();
    put(figures, name, &pairs)
}

/// Records the errors of all the rounds, by code, under `name errors`.
pub(super) fn note_errors(figures: &mut Map<String, Value>, name: &str, stats: &[LoadStats]) {
    let mut errors = std::collections::BTreeMap::<String, u64>::new();
    for s in stats {
        for (k, v) in &s.errors {
            *errors.entry(k.clone()).or_default() += v;
        }
    }
    figures.insert(format!("{name} errors"), json!(errors));
}

/// Records the median CPU per call of each part over the rounds, and their sum; returns the
/// parts' medians.
pub(super) fn put_cpu(
    f: &mut Map<String, Value>,
    name: &str,
    rounds: &[Vec<(&'static str, f64)>],
) -> Vec<(&'static str, f64)> {
    let mut parts: Vec<(&'static str, f64)> = Vec::new();
    for (i, (part, _)) in rounds
        .first()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let values: Vec<f64> = rounds
            .iter()
            .filter_map(|r| r.get(i).map(|x| x.1))
            .collect();
        parts.push((part, summarize(&values).0));
    }
    let total: f64 = parts.iter().map(|(_, v)| v).sum();
    f.insert(
        name.to_owned(),
        json!({
            "parts": parts.iter().map(|(p, v)| (p.to_string(), json!((v * 10.0).round() / 10.0))).collect::<Map<_, _>>(),
            "total": (total * 10.0).round() / 10.0,
        }),
    );
    parts
}
