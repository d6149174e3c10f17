//! A driver diagram as the service holds it, and the rules of editing it: pure code, no
//! I/O. A diagram is a list of nodes in the order they were added; each node but the aim
//! hangs from one or more nodes of the column to its left, so the diagram is layered by
//! construction and cannot form a loop.

use std::collections::{BTreeSet, HashMap, HashSet};

use qi_platform::convert::required_text;
use qi_platform::{AccessContext, Error};
use qi_proto::projects as pb;
use serde::{Deserialize, Serialize};

use crate::foreign;

/// The most nodes a diagram holds.
pub(crate) const MAX_NODES: usize = 200;
/// The longest text a node holds, in characters.
pub(crate) const MAX_TEXT: usize = 500;

/// The columns, left to right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Aim,
    PrimaryDriver,
    SecondaryDriver,
    ChangeIdea,
}

impl Kind {
    /// The kind a node of this kind hangs from.
    pub(crate) fn parent(self) -> Option<Kind> {
        match self {
            Kind::Aim => None,
            Kind::PrimaryDriver => Some(Kind::Aim),
            Kind::SecondaryDriver => Some(Kind::PrimaryDriver),
            Kind::ChangeIdea => Some(Kind::SecondaryDriver),
        }
    }

    /// How the contract and messages say it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Aim => "aim",
            Kind::PrimaryDriver => "primary driver",
            Kind::SecondaryDriver => "secondary driver",
            Kind::ChangeIdea => "change idea",
        }
    }

    fn from_proto(field: &str, value: i32) -> Result<Kind, Error> {
        match pb::DriverNodeKind::try_from(value) {
            Ok(pb::DriverNodeKind::Aim) => Ok(Kind::Aim),
            Ok(pb::DriverNodeKind::PrimaryDriver) => Ok(Kind::PrimaryDriver),
            Ok(pb::DriverNodeKind::SecondaryDriver) => Ok(Kind::SecondaryDriver),
            Ok(pb::DriverNodeKind::ChangeIdea) => Ok(Kind::ChangeIdea),
            Ok(pb::DriverNodeKind::Unspecified) => Err(Error::invalid(field, "is required")),
            Err(_) => Err(Error::invalid(
                field,
                format!("{value} is not a known value"),
            )),
        }
    }

    pub(crate) fn to_proto(self) -> pb::DriverNodeKind {
        match self {
            Kind::Aim => pb::DriverNodeKind::Aim,
            Kind::PrimaryDriver => pb::DriverNodeKind::PrimaryDriver,
            Kind::SecondaryDriver => pb::DriverNodeKind::SecondaryDriver,
            Kind::ChangeIdea => pb::DriverNodeKind::ChangeIdea,
        }
    }
}

/// A node as stored (one element of a version's JSON array).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) kind: Kind,
    pub(crate) text: String,
    /// `staff/{employee_number}`, or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) owner: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) parents: Vec<String>,
    /// The numbers of the project's PDSA cycles testing a change idea.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) cycles: Vec<i32>,
    /// The ids of the project's measures tracking an aim or a driver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) measures: Vec<String>,
}

/// What an edit may link to: the project's name, its PDSA cycles (number → decision) and
/// its measures' ids.
pub(crate) struct Links<'a> {
    pub(crate) project: &'a str,
    pub(crate) cycles: &'a HashMap<i32, Option<pb::PdsaDecision>>,
    pub(crate) measures: &'a HashSet<String>,
}

/// A change idea's PDSA status, from the decisions of its cycles (see the contract).
pub(crate) fn pdsa_status(
    cycles: &[i32],
    decisions: &HashMap<i32, Option<pb::PdsaDecision>>,
) -> pb::PdsaStatus {
    let mut linked: Vec<(i32, Option<pb::PdsaDecision>)> = cycles
        .iter()
        .filter_map(|n| decisions.get(n).map(|d| (*n, *d)))
        .collect();
    if linked.is_empty() {
        return pb::PdsaStatus::Untested;
    }
    linked.sort_by_key(|(n, _)| *n);
    let any = |d: Option<pb::PdsaDecision>| linked.iter().any(|(_, x)| *x == d);
    if any(Some(pb::PdsaDecision::Adopt)) {
        pb::PdsaStatus::Adopted
    } else if any(None) {
        pb::PdsaStatus::Testing
    } else {
        match linked.last().and_then(|(_, d)| *d) {
            Some(pb::PdsaDecision::Abandon) => pb::PdsaStatus::Abandoned,
            Some(
                pb::PdsaDecision::Adapt | pb::PdsaDecision::Adopt | pb::PdsaDecision::Unspecified,
            )
            | None => pb::PdsaStatus::Testing,
        }
    }
}

/// Applies `edits` in order to `nodes`, checking each against the diagram as the edits
/// before it left it; returns what they did, for the history. Every field error names the
/// field (`edits[1].add_node.parents`); nothing changes unless all pass (the caller keeps
/// the stored version).
pub(crate) fn apply(
    ctx: &AccessContext,
    nodes: &mut Vec<Node>,
    edits: &[pb::DriverDiagramEdit],
    links: &Links<'_>,
) -> Result<Vec<String>, Error> {
    if edits.is_empty() {
        return Err(Error::invalid("edits", "is required: at least one edit"));
    }
    let mut done = Vec::with_capacity(edits.len());
    for (i, edit) in edits.iter().enumerate() {
        let at = format!("edits[{i}]");
        let what = match &edit.edit {
            None => {
                return Err(Error::invalid(
                    at,
                    "is empty: set one of add_node, update_node, remove_node",
                ));
            }
            Some(pb::driver_diagram_edit::Edit::AddNode(n)) => {
                add(ctx, nodes, n, links, &format!("{at}.add_node"))?
            }
            Some(pb::driver_diagram_edit::Edit::UpdateNode(u)) => {
                update(ctx, nodes, u, links, &format!("{at}.update_node"))?
            }
            Some(pb::driver_diagram_edit::Edit::RemoveNode(r)) => {
                remove(nodes, r, &format!("{at}.remove_node"))?
            }
        };
        done.push(what);
    }
    Ok(done)
}

fn add(
    ctx: &AccessContext,
    nodes: &mut Vec<Node>,
    n: &pb::DriverNode,
    links: &Links<'_>,
    at: &str,
) -> Result<String, Error> {
    let field = |f: &str| format!("{at}.{f}");
    qi_platform::names::validate_id(&field("id"), &n.id)?;
    if nodes.iter().any(|x| x.id == n.id) {
        return Err(Error::invalid(
            field("id"),
            format!("the diagram already has a node `{}`", n.id),
        ));
    }
    let kind = Kind::from_proto(&field("kind"), n.kind)?;
    if kind == Kind::Aim
        && let Some(aim) = nodes.iter().find(|x| x.kind == Kind::Aim)
    {
        return Err(Error::invalid(
            field("kind"),
            format!(
                "the diagram has its aim already (`{}`): reword it instead",
                aim.id
            ),
        ));
    }
    if nodes.len() >= MAX_NODES {
        return Err(Error::invalid(
            at,
            format!("a driver diagram holds at most {MAX_NODES} nodes"),
        ));
    }
    if n.pdsa_status != 0 {
        return Err(Error::invalid(field("pdsa_status"), "is output only"));
    }
    let node = Node {
        id: n.id.clone(),
        kind,
        text: required_text(&field("text"), &n.text, MAX_TEXT)?,
        owner: owner(ctx, &field("owner"), &n.owner)?,
        parents: parents(nodes, kind, &n.parents, &field("parents"))?,
        cycles: cycles(kind, &n.pdsa_cycles, links, &field("pdsa_cycles"))?,
        measures: measures(kind, &n.measures, links, &field("measures"))?,
    };
    let what = format!("added {} `{}`", kind.label(), node.id);
    nodes.push(node);
    Ok(what)
}

/// The fields an update may change.
const UPDATABLE: &[&str] = &["text", "owner", "parents", "pdsa_cycles", "measures"];

fn update(
    ctx: &AccessContext,
    nodes: &mut [Node],
    u: &pb::UpdateDriverNode,
    links: &Links<'_>,
    at: &str,
) -> Result<String, Error> {
    let field = |f: &str| format!("{at}.{f}");
    let n = u
        .node
        .as_ref()
        .ok_or_else(|| Error::invalid(field("node"), "is required"))?;
    let i = nodes
        .iter()
        .position(|x| x.id == n.id)
        .ok_or_else(|| unknown(&field("node.id"), &n.id))?;
    let kind = nodes[i].kind;
    if n.kind != 0 && n.kind != kind.to_proto() as i32 {
        return Err(Error::invalid(
            field("node.kind"),
            format!("is immutable: `{}` is a {}", n.id, kind.label()),
        ));
    }
    let paths = qi_platform::update_mask::paths(u.update_mask.as_ref(), UPDATABLE, |p| match p {
        "text" => !n.text.is_empty(),
        "owner" => !n.owner.is_empty(),
        "parents" => !n.parents.is_empty(),
        "pdsa_cycles" => !n.pdsa_cycles.is_empty(),
        "measures" => !n.measures.is_empty(),
        _ => false,
    })
    .map_err(|e| prefixed(e, at))?;
    // Checked against the diagram before the change, then written together.
    let mut node = nodes[i].clone();
    let mut changed = Vec::new();
    for p in paths {
        let f = field(&format!("node.{p}"));
        match p {
            "text" => node.text = required_text(&f, &n.text, MAX_TEXT)?,
            "owner" => node.owner = owner(ctx, &f, &n.owner)?,
            "parents" => node.parents = parents(nodes, kind, &n.parents, &f)?,
            "pdsa_cycles" => node.cycles = cycles(kind, &n.pdsa_cycles, links, &f)?,
            _ => node.measures = measures(kind, &n.measures, links, &f)?,
        }
        changed.push(match p {
            "text" => "reworded",
            "parents" => "moved",
            "owner" => "changed the owner of",
            "pdsa_cycles" => "changed the PDSA cycles of",
            _ => "changed the measures of",
        });
    }
    let what = format!("{} {} `{}`", changed.join(", "), kind.label(), node.id);
    nodes[i] = node;
    Ok(what)
}

fn remove(nodes: &mut Vec<Node>, r: &pb::RemoveDriverNode, at: &str) -> Result<String, Error> {
    let field = format!("{at}.id");
    let node = nodes
        .iter()
        .find(|x| x.id == r.id)
        .ok_or_else(|| unknown(&field, &r.id))?;
    let children: Vec<&str> = nodes
        .iter()
        .filter(|x| x.parents.contains(&r.id))
        .map(|x| x.id.as_str())
        .collect();
    if !children.is_empty() && !r.cascade {
        return Err(Error::FailedPrecondition {
            reason: "NODE_HAS_CHILDREN",
            message: format!(
                "{} `{}` has {} hanging from it ({}): remove or move {} first, or set `cascade`",
                node.kind.label(),
                node.id,
                if children.len() == 1 {
                    "a node"
                } else {
                    "nodes"
                },
                quoted(&children),
                if children.len() == 1 { "it" } else { "them" },
            ),
        });
    }
    let kind = node.kind;
    // Remove the node, then every node left hanging from nothing, until none is.
    let mut gone: BTreeSet<String> = BTreeSet::from([r.id.clone()]);
    let mut removed = Vec::new();
    while !gone.is_empty() {
        nodes.retain(|x| !gone.contains(&x.id));
        removed.extend(gone.iter().cloned());
        for x in nodes.iter_mut() {
            x.parents.retain(|p| !gone.contains(p));
        }
        gone = nodes
            .iter()
            .filter(|x| x.kind != Kind::Aim && x.parents.is_empty())
            .map(|x| x.id.clone())
            .collect();
    }
    Ok(if removed.len() == 1 {
        format!("removed {} `{}`", kind.label(), r.id)
    } else {
        format!(
            "removed {} `{}` and {} below it",
            kind.label(),
            r.id,
            removed.len() - 1
        )
    })
}

fn quoted(ids: &[&str]) -> String {
    ids.iter()
        .map(|id| format!("`{id}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unknown(field: &str, id: &str) -> Error {
    Error::invalid(
        field,
        format!("the diagram has no node `{}`", qi_platform::names::clip(id)),
    )
}

/// Names `field` under `at` in every violation of `e`.
fn prefixed(e: Error, at: &str) -> Error {
    let Error::InvalidArgument { violations } = e else {
        return e;
    };
    Error::InvalidArgument {
        violations: violations
            .into_iter()
            .map(|mut v| {
                v.field = format!("{at}.{}", v.field);
                v
            })
            .collect(),
    }
}

fn owner(ctx: &AccessContext, field: &str, value: &str) -> Result<String, Error> {
    if value.is_empty() {
        Ok(String::new())
    } else {
        foreign::person(ctx, field, value)
    }
}

fn parents(
    nodes: &[Node],
    kind: Kind,
    given: &[String],
    field: &str,
) -> Result<Vec<String>, Error> {
    let Some(want) = kind.parent() else {
        return if given.is_empty() {
            Ok(Vec::new())
        } else {
            Err(Error::invalid(field, "the aim hangs from nothing"))
        };
    };
    if given.is_empty() {
        return Err(Error::invalid(
            field,
            format!(
                "a {} hangs from at least one {}",
                kind.label(),
                want.label()
            ),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(given.len());
    for p in given {
        let parent = nodes
            .iter()
            .find(|x| &x.id == p)
            .ok_or_else(|| unknown(field, p))?;
        if parent.kind != want {
            return Err(Error::invalid(
                field,
                format!(
                    "a {} hangs from a {}, and `{p}` is a {}",
                    kind.label(),
                    want.label(),
                    parent.kind.label()
                ),
            ));
        }
        if out.contains(p) {
            return Err(Error::invalid(field, format!("`{p}` is given twice")));
        }
        out.push(p.clone());
    }
    Ok(out)
}

fn cycles(kind: Kind, given: &[String], links: &Links<'_>, field: &str) -> Result<Vec<i32>, Error> {
    if given.is_empty() {
        return Ok(Vec::new());
    }
    if kind != Kind::ChangeIdea {
        return Err(Error::invalid(
            field,
            format!(
                "only change ideas are tested by PDSA cycles, not a {}",
                kind.label()
            ),
        ));
    }
    let prefix = format!("{}/pdsaCycles/", links.project);
    let mut out = Vec::with_capacity(given.len());
    for name in given {
        let number = name
            .strip_prefix(&prefix)
            .and_then(|n| n.parse::<i32>().ok())
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!(
                        "`{}` is not a PDSA cycle of this project: `{prefix}{{number}}`",
                        qi_platform::names::clip(name)
                    ),
                )
            })?;
        if !links.cycles.contains_key(&number) {
            return Err(Error::invalid(
                field,
                format!("{} has no PDSA cycle {number}", links.project),
            ));
        }
        if out.contains(&number) {
            return Err(Error::invalid(
                field,
                format!("cycle {number} is given twice"),
            ));
        }
        out.push(number);
    }
    Ok(out)
}

fn measures(
    kind: Kind,
    given: &[String],
    links: &Links<'_>,
    field: &str,
) -> Result<Vec<String>, Error> {
    if given.is_empty() {
        return Ok(Vec::new());
    }
    if kind == Kind::ChangeIdea {
        return Err(Error::invalid(
            field,
            "measures track the aim and the drivers; a change idea's tests are its PDSA cycles",
        ));
    }
    let prefix = format!("{}/measures/", links.project);
    let mut out: Vec<String> = Vec::with_capacity(given.len());
    for name in given {
        let id = name
            .strip_prefix(&prefix)
            .filter(|id| links.measures.contains(*id))
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!(
                        "`{}` is not a measure of this project ({prefix}{{measure}})",
                        qi_platform::names::clip(name)
                    ),
                )
            })?;
        if out.iter().any(|x| x == id) {
            return Err(Error::invalid(field, format!("`{name}` is given twice")));
        }
        out.push(id.to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::caller;
    use pb::driver_diagram_edit::Edit;

    const PROJECT: &str = "sites/BAS/projects/p1";

    fn node(id: &str, kind: pb::DriverNodeKind, parents: &[&str]) -> pb::DriverNode {
        pb::DriverNode {
            id: id.into(),
            kind: kind as i32,
            text: format!("Text of {id}"),
            parents: parents.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    fn add_edit(n: pb::DriverNode) -> pb::DriverDiagramEdit {
        pb::DriverDiagramEdit {
            edit: Some(Edit::AddNode(n)),
        }
    }

    fn remove_edit(id: &str, cascade: bool) -> pb::DriverDiagramEdit {
        pb::DriverDiagramEdit {
            edit: Some(Edit::RemoveNode(pb::RemoveDriverNode {
                id: id.into(),
                cascade,
            })),
        }
    }

    struct World {
        cycles: HashMap<i32, Option<pb::PdsaDecision>>,
        measures: HashSet<String>,
    }

    impl World {
        fn new() -> World {
            World {
                cycles: HashMap::from([
                    (1, Some(pb::PdsaDecision::Adapt)),
                    (2, None),
                    (3, Some(pb::PdsaDecision::Abandon)),
                ]),
                measures: HashSet::from(["m1".to_owned()]),
            }
        }
        fn links(&self) -> Links<'_> {
            Links {
                project: PROJECT,
                cycles: &self.cycles,
                measures: &self.measures,
            }
        }
    }

    /// aim ← p1, p2 ← s1 (p1), s2 (p1, p2) ← c1 (s1, s2), c2 (s2).
    fn sample(w: &World) -> Vec<Node> {
        use pb::DriverNodeKind as K;
        let mut nodes = Vec::new();
        let edits = [
            add_edit(node("aim", K::Aim, &[])),
            add_edit(node("p1", K::PrimaryDriver, &["aim"])),
            add_edit(node("p2", K::PrimaryDriver, &["aim"])),
            add_edit(node("s1", K::SecondaryDriver, &["p1"])),
            add_edit(node("s2", K::SecondaryDriver, &["p1", "p2"])),
            add_edit(node("c1", K::ChangeIdea, &["s1", "s2"])),
            add_edit(node("c2", K::ChangeIdea, &["s2"])),
        ];
        apply(&caller(None), &mut nodes, &edits, &w.links()).expect("a valid diagram");
        nodes
    }

    fn ids(nodes: &[Node]) -> Vec<&str> {
        nodes.iter().map(|n| n.id.as_str()).collect()
    }

    fn field_of(e: Error) -> String {
        let Error::InvalidArgument { violations } = e else {
            panic!("{e:?}")
        };
        violations[0].field.clone()
    }

    #[test]
    fn nodes_hang_from_the_column_to_their_left_and_may_have_several_parents() {
        let w = World::new();
        let nodes = sample(&w);
        assert_eq!(ids(&nodes), ["aim", "p1", "p2", "s1", "s2", "c1", "c2"]);
        assert_eq!(nodes[5].parents, ["s1", "s2"]);
        use pb::DriverNodeKind as K;
        for (bad, field) in [
            (
                node("x", K::ChangeIdea, &["p1"]),
                "edits[0].add_node.parents",
            ),
            (
                node("x", K::SecondaryDriver, &[]),
                "edits[0].add_node.parents",
            ),
            (
                node("x", K::SecondaryDriver, &["nope"]),
                "edits[0].add_node.parents",
            ),
            (
                node("x", K::SecondaryDriver, &["p1", "p1"]),
                "edits[0].add_node.parents",
            ),
            (node("x", K::Aim, &[]), "edits[0].add_node.kind"),
            (node("x", K::Unspecified, &[]), "edits[0].add_node.kind"),
            (
                node("p1", K::PrimaryDriver, &["aim"]),
                "edits[0].add_node.id",
            ),
            (
                node("Not An Id", K::PrimaryDriver, &["aim"]),
                "edits[0].add_node.id",
            ),
            (
                pb::DriverNode {
                    text: "  ".into(),
                    ..node("x", K::PrimaryDriver, &["aim"])
                },
                "edits[0].add_node.text",
            ),
            (
                pb::DriverNode {
                    text: "x".repeat(MAX_TEXT + 1),
                    ..node("x", K::PrimaryDriver, &["aim"])
                },
                "edits[0].add_node.text",
            ),
            (
                pb::DriverNode {
                    owner: "someone".into(),
                    ..node("x", K::PrimaryDriver, &["aim"])
                },
                "edits[0].add_node.owner",
            ),
        ] {
            let mut copy = nodes.clone();
            let err = apply(
                &caller(None),
                &mut copy,
                &[add_edit(bad.clone())],
                &w.links(),
            )
            .expect_err(&format!("{bad:?}"));
            assert_eq!(field_of(err), field, "{bad:?}");
        }
    }

    #[test]
    fn owners_are_stored_by_their_canonical_name() {
        let w = World::new();
        let mut nodes = sample(&w);
        let n = pb::DriverNode {
            owner: "sites/BAS/staff/12345678".into(),
            ..node("p3", pb::DriverNodeKind::PrimaryDriver, &["aim"])
        };
        apply(&caller(None), &mut nodes, &[add_edit(n)], &w.links()).unwrap();
        assert_eq!(nodes.last().unwrap().owner, "staff/12345678");
    }

    #[test]
    fn links_are_to_the_projects_own_cycles_and_measures_on_the_right_kinds() {
        let w = World::new();
        let nodes = sample(&w);
        let update = |id: &str, cycles: &[&str], measures: &[&str]| pb::DriverDiagramEdit {
            edit: Some(Edit::UpdateNode(pb::UpdateDriverNode {
                node: Some(pb::DriverNode {
                    id: id.into(),
                    pdsa_cycles: cycles.iter().map(|c| c.to_string()).collect(),
                    measures: measures.iter().map(|c| c.to_string()).collect(),
                    ..Default::default()
                }),
                update_mask: None,
            })),
        };
        let mut ok = nodes.clone();
        let done = apply(
            &caller(None),
            &mut ok,
            &[
                update("c1", &["sites/BAS/projects/p1/pdsaCycles/2"], &[]),
                update("p1", &[], &["sites/BAS/projects/p1/measures/m1"]),
            ],
            &w.links(),
        )
        .unwrap();
        assert_eq!(ok[5].cycles, [2]);
        assert_eq!(ok[1].measures, ["m1"]);
        assert_eq!(done[0], "changed the PDSA cycles of change idea `c1`");
        for (edit, field) in [
            (
                update("c1", &["sites/BAS/projects/p2/pdsaCycles/1"], &[]),
                "edits[0].update_node.node.pdsa_cycles",
            ),
            (
                update("c1", &["sites/BAS/projects/p1/pdsaCycles/9"], &[]),
                "edits[0].update_node.node.pdsa_cycles",
            ),
            (
                update("p1", &["sites/BAS/projects/p1/pdsaCycles/1"], &[]),
                "edits[0].update_node.node.pdsa_cycles",
            ),
            (
                update("c1", &[], &["sites/BAS/projects/p1/measures/m1"]),
                "edits[0].update_node.node.measures",
            ),
            (
                update("p1", &[], &["sites/BAS/projects/p1/measures/m2"]),
                "edits[0].update_node.node.measures",
            ),
            (update("zz", &[], &[]), "edits[0].update_node.node.id"),
            (update("p1", &[], &[]), "edits[0].update_node.update_mask"),
        ] {
            let mut copy = nodes.clone();
            let err = apply(&caller(None), &mut copy, &[edit], &w.links()).unwrap_err();
            assert_eq!(field_of(err), field);
        }
    }

    #[test]
    fn removing_a_node_with_children_needs_cascade_which_keeps_children_with_other_parents() {
        let w = World::new();
        let nodes = sample(&w);
        let mut copy = nodes.clone();
        let err = apply(
            &caller(None),
            &mut copy,
            &[remove_edit("p1", false)],
            &w.links(),
        )
        .unwrap_err();
        let Error::FailedPrecondition { reason, message } = err else {
            panic!("{err:?}")
        };
        assert_eq!(reason, "NODE_HAS_CHILDREN");
        assert!(
            message.contains("`p1`") && message.contains("`s1`, `s2`"),
            "{message}"
        );
        // Cascade: s1 hung from p1 alone, so it goes, and c1 stays through s2.
        let mut copy = nodes.clone();
        let done = apply(
            &caller(None),
            &mut copy,
            &[remove_edit("p1", true)],
            &w.links(),
        )
        .unwrap();
        assert_eq!(ids(&copy), ["aim", "p2", "s2", "c1", "c2"]);
        assert_eq!(copy[1].parents, ["aim"]);
        assert_eq!(copy[2].parents, ["p2"]);
        assert_eq!(copy[3].parents, ["s2"]);
        assert_eq!(done, ["removed primary driver `p1` and 1 below it"]);
        // A leaf goes without cascade; the aim with cascade takes everything.
        let mut copy = nodes.clone();
        apply(
            &caller(None),
            &mut copy,
            &[remove_edit("c2", false)],
            &w.links(),
        )
        .unwrap();
        assert_eq!(copy.len(), 6);
        let mut copy = nodes;
        apply(
            &caller(None),
            &mut copy,
            &[remove_edit("aim", true)],
            &w.links(),
        )
        .unwrap();
        assert!(copy.is_empty());
    }

    #[test]
    fn a_diagram_holds_at_most_its_bound_of_nodes() {
        let w = World::new();
        let mut nodes = sample(&w);
        let more: Vec<_> = (nodes.len()..=MAX_NODES)
            .map(|i| {
                add_edit(node(
                    &format!("n{i}"),
                    pb::DriverNodeKind::PrimaryDriver,
                    &["aim"],
                ))
            })
            .collect();
        let err = apply(&caller(None), &mut nodes, &more, &w.links()).unwrap_err();
        assert_eq!(field_of(err), format!("edits[{}].add_node", more.len() - 1));
    }

    #[test]
    fn a_change_ideas_status_follows_its_cycles() {
        use pb::PdsaDecision as D;
        use pb::PdsaStatus as S;
        let d = HashMap::from([
            (1, Some(D::Adapt)),
            (2, None),
            (3, Some(D::Abandon)),
            (4, Some(D::Adopt)),
            (5, Some(D::Abandon)),
        ]);
        for (cycles, want) in [
            (vec![], S::Untested),
            (vec![2], S::Testing),
            (vec![1], S::Testing),
            (vec![3], S::Abandoned),
            (vec![3, 5], S::Abandoned),
            (vec![1, 3], S::Abandoned),
            (vec![3, 1], S::Abandoned),
            (vec![2, 3], S::Testing),
            (vec![1, 4, 5], S::Adopted),
        ] {
            assert_eq!(pdsa_status(&cycles, &d), want, "{cycles:?}");
        }
    }
}
