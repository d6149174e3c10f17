//! A project's driver diagram as its team draws it at the start: the aim, its theme's
//! drivers, and the theme's change ideas, the one its PDSA cycles test linked to them (so
//! it shows as testing or adopted, the others as untested); the aim owned by the lead and
//! the primary drivers by the team, and the project's measures on the aim (outcome and
//! balancing) and on the first primary driver (process).

use qi_proto::projects as pb;

use super::journey::cycles;
use super::portfolio::ProjectPlan;
use crate::demo::data::drivers::DRIVERS;
use crate::demo::data::projects::THEMES;

fn add(node: pb::DriverNode) -> pb::DriverDiagramEdit {
    pb::DriverDiagramEdit {
        edit: Some(pb::driver_diagram_edit::Edit::AddNode(node)),
    }
}

fn node(id: String, kind: pb::DriverNodeKind, text: &str, parents: Vec<String>) -> pb::DriverNode {
    pb::DriverNode {
        id,
        kind: kind as i32,
        text: text.to_owned(),
        parents,
        ..Default::default()
    }
}

/// The edits that draw `p`'s diagram, given its team (staff names, the lead first) and
/// its measures as stored.
pub(crate) fn edits(
    p: &ProjectPlan,
    team: &[String],
    measures: &[pb::Measure],
) -> Vec<pb::DriverDiagramEdit> {
    let d = &DRIVERS[p.theme];
    let t = &THEMES[p.theme];
    let of_kind = |k: pb::MeasureKind| -> Vec<String> {
        measures
            .iter()
            .filter(|m| m.kind == k as i32)
            .map(|m| m.name.clone())
            .collect()
    };
    let mut out = Vec::new();
    let mut aim = node(
        "aim".into(),
        pb::DriverNodeKind::Aim,
        &p.aim().statement,
        vec![],
    );
    aim.owner = team.first().cloned().unwrap_or_default();
    aim.measures = of_kind(pb::MeasureKind::Outcome);
    aim.measures.extend(of_kind(pb::MeasureKind::Balancing));
    out.push(add(aim));
    for (i, (primary, secondaries)) in d.primary.iter().enumerate() {
        let id = format!("p{}", i + 1);
        let mut n = node(
            id.clone(),
            pb::DriverNodeKind::PrimaryDriver,
            primary,
            vec!["aim".into()],
        );
        n.owner = match team.len() {
            0 => String::new(),
            1 => team[0].clone(),
            k => team[1 + i % (k - 1)].clone(),
        };
        if i == 0 {
            n.measures = of_kind(pb::MeasureKind::Process);
        }
        out.push(add(n));
        for (j, s) in secondaries.iter().enumerate() {
            let s = node(
                format!("s{}", 2 * i + j + 1),
                pb::DriverNodeKind::SecondaryDriver,
                s,
                vec![id.clone()],
            );
            out.push(add(s));
        }
    }
    let tested = p.key as usize % t.changes.len();
    let tests = cycles(p).len();
    for (i, (change, serves)) in t.changes.iter().zip(d.serves).enumerate() {
        let parents = serves.iter().map(|s| format!("s{}", s + 1)).collect();
        let mut n = node(
            format!("c{}", i + 1),
            pb::DriverNodeKind::ChangeIdea,
            change,
            parents,
        );
        if i == tested {
            n.pdsa_cycles = (1..=tests)
                .map(|k| format!("{}/pdsaCycles/{k}", p.name()))
                .collect();
        }
        out.push(add(n));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::plan::portfolio::{Fate, portfolio};

    #[test]
    fn every_in_progress_project_gets_a_whole_diagram_with_its_cycles_on_one_idea() {
        let plan = portfolio();
        let running: Vec<_> = plan
            .projects
            .iter()
            .filter(|p| p.fate == Fate::InProgress)
            .collect();
        assert!(!running.is_empty());
        for p in running {
            let team = ["staff/10000001".to_owned(), "staff/10000002".to_owned()];
            let edits = edits(p, &team, &[]);
            assert_eq!(edits.len(), 1 + 3 + 6 + 4, "{}", p.id);
            let linked: Vec<_> = edits
                .iter()
                .filter_map(|e| match &e.edit {
                    Some(pb::driver_diagram_edit::Edit::AddNode(n)) => Some(n),
                    _ => None,
                })
                .filter(|n| !n.pdsa_cycles.is_empty())
                .collect();
            assert!(linked.len() <= 1);
            assert!(
                linked
                    .iter()
                    .all(|n| n.kind == pb::DriverNodeKind::ChangeIdea as i32)
            );
        }
    }
}
