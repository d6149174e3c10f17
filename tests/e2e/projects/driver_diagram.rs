//! Driver diagrams (issue 32): a project's aim, drivers and change ideas, edited in
//! versions under an etag, with change ideas linked to the PDSA cycles that test them and
//! drivers to the measures that track them; read at any version, listed as history, and
//! drawn as SVG — checked here by parsing the picture.

use std::collections::HashMap;

use qi_e2e::projects::create_pdsa_cycle;
use qi_e2e::{Caller, TestSuite, code, fields};
use qi_proto::projects as pb;
use tonic::{Code, Status};

use super::{bas_editor, bas_team, bas_viewer, running_project};
use pb::DriverNodeKind as K;
use pb::driver_diagram_edit::Edit;

fn diagram_of(project: &str) -> String {
    format!("{project}/driverDiagram")
}

fn node(id: &str, kind: K, text: &str, parents: &[&str]) -> pb::DriverNode {
    pb::DriverNode {
        id: id.into(),
        kind: kind as i32,
        text: text.into(),
        parents: parents.iter().map(|p| p.to_string()).collect(),
        ..Default::default()
    }
}

fn add(n: pb::DriverNode) -> pb::DriverDiagramEdit {
    pb::DriverDiagramEdit {
        edit: Some(Edit::AddNode(n)),
    }
}

fn update(n: pb::DriverNode, paths: &[&str]) -> pb::DriverDiagramEdit {
    pb::DriverDiagramEdit {
        edit: Some(Edit::UpdateNode(pb::UpdateDriverNode {
            node: Some(n),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
        })),
    }
}

fn remove(id: &str, cascade: bool) -> pb::DriverDiagramEdit {
    pb::DriverDiagramEdit {
        edit: Some(Edit::RemoveNode(pb::RemoveDriverNode {
            id: id.into(),
            cascade,
        })),
    }
}

fn request(
    name: &str,
    etag: &str,
    edits: Vec<pb::DriverDiagramEdit>,
) -> pb::EditDriverDiagramRequest {
    pb::EditDriverDiagramRequest {
        name: name.into(),
        edits,
        etag: etag.into(),
        ..Default::default()
    }
}

async fn edit(c: &Caller, req: pb::EditDriverDiagramRequest) -> Result<pb::DriverDiagram, Status> {
    let resp = c.projects().edit_driver_diagram(req).await?.into_inner();
    Ok(resp.driver_diagram.expect("a diagram"))
}

async fn get(c: &Caller, name: &str, version: i64) -> Result<pb::DriverDiagram, Status> {
    let req = pb::GetDriverDiagramRequest {
        name: name.into(),
        version,
    };
    let resp = c.projects().get_driver_diagram(req).await?.into_inner();
    Ok(resp.driver_diagram.expect("a diagram"))
}

async fn history(c: &Caller, name: &str) -> Result<Vec<pb::DriverDiagramVersion>, Status> {
    let req = pb::ListDriverDiagramVersionsRequest {
        parent: name.into(),
        ..Default::default()
    };
    Ok(c.projects()
        .list_driver_diagram_versions(req)
        .await?
        .into_inner()
        .versions)
}

async fn render(c: &Caller, name: &str) -> Result<String, Status> {
    let req = pb::RenderDriverDiagramRequest {
        name: name.into(),
        version: 0,
    };
    Ok(c.projects()
        .render_driver_diagram(req)
        .await?
        .into_inner()
        .svg)
}

/// The frailty project's diagram: the aim, two primary drivers, three secondary drivers
/// (one under both primaries) and three change ideas (one under two secondaries).
fn frailty_edits() -> Vec<pb::DriverDiagramEdit> {
    vec![
        add(node(
            "aim",
            K::Aim,
            "Cut frail patients' stay by 2 days by March",
            &[],
        )),
        add(node("flow", K::PrimaryDriver, "Timely discharge", &["aim"])),
        add(node(
            "care",
            K::PrimaryDriver,
            "Frailty-aware care",
            &["aim"],
        )),
        add(node(
            "edd",
            K::SecondaryDriver,
            "Expected discharge dates",
            &["flow"],
        )),
        add(node(
            "mdt",
            K::SecondaryDriver,
            "Daily board rounds",
            &["flow", "care"],
        )),
        add(node(
            "cfs",
            K::SecondaryDriver,
            "Frailty screening at the door",
            &["care"],
        )),
        add(node(
            "edd-48",
            K::ChangeIdea,
            "EDD set within 48 hours",
            &["edd", "mdt"],
        )),
        add(node(
            "huddle",
            K::ChangeIdea,
            "10-minute board huddle",
            &["mdt"],
        )),
        add(node(
            "cfs-ed",
            K::ChangeIdea,
            "Clinical Frailty Scale in ED",
            &["cfs"],
        )),
    ]
}

fn ids(d: &pb::DriverDiagram) -> Vec<&str> {
    d.nodes.iter().map(|n| n.id.as_str()).collect()
}

#[tokio::test]
async fn a_driver_diagram_is_edited_in_versions_under_an_etag_and_its_history_reads_back() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let editor = bas_editor(&suite);
    let name = diagram_of(&p.name);
    // Every project has one, empty until its first edit.
    let empty = get(&editor, &name, 0).await.unwrap();
    assert_eq!(
        (empty.version, empty.etag.as_str(), empty.nodes.len()),
        (0, "\"0\"", 0)
    );
    let v1 = edit(&editor, request(&name, &empty.etag, frailty_edits()))
        .await
        .unwrap();
    assert_eq!((v1.version, v1.etag.as_str()), (1, "\"1\""));
    assert_eq!(v1.name, name);
    assert_eq!(
        ids(&v1),
        [
            "aim", "flow", "care", "edd", "mdt", "cfs", "edd-48", "huddle", "cfs-ed"
        ]
    );
    assert_eq!(v1.nodes[4].parents, ["flow", "care"], "several parents");
    assert_eq!(v1.editor, "bas-editor");
    assert!(
        v1.summary
            .starts_with("added aim `aim`; added primary driver `flow`"),
        "{}",
        v1.summary
    );
    // Reword and give an owner (any form of a staff name, stored canonically).
    let mut reworded = node("huddle", K::Unspecified, "Board huddle at 9am", &[]);
    reworded.owner = "sites/BAS/staff/20000001".into();
    let mut req = request(&name, &v1.etag, vec![update(reworded, &["text", "owner"])]);
    req.summary = "Huddle time agreed with the ward".into();
    let v2 = edit(&editor, req).await.unwrap();
    assert_eq!(v2.version, 2);
    let huddle = &v2.nodes[7];
    assert_eq!(
        (huddle.text.as_str(), huddle.owner.as_str()),
        ("Board huddle at 9am", "staff/20000001")
    );
    // A stale etag is refused, and nothing changes.
    let stale = edit(
        &editor,
        request(&name, &v1.etag, vec![remove("huddle", false)]),
    )
    .await;
    assert_eq!(code(stale), Code::Aborted);
    // Move: the huddle now serves screening too.
    let moved = node("huddle", K::ChangeIdea, "", &["mdt", "cfs"]);
    let v3 = edit(
        &editor,
        request(&name, &v2.etag, vec![update(moved, &["parents"])]),
    )
    .await
    .unwrap();
    assert_eq!(v3.nodes[7].parents, ["mdt", "cfs"]);
    assert_eq!(v3.summary, "moved change idea `huddle`");
    // History, newest first; every version reads back as it was.
    let versions = history(&bas_viewer(&suite), &name).await.unwrap();
    let listed: Vec<(i64, &str, i32)> = versions
        .iter()
        .map(|v| (v.version, v.summary.as_str(), v.node_count))
        .collect();
    assert_eq!(listed[0], (3, "moved change idea `huddle`", 9));
    assert_eq!(listed[1], (2, "Huddle time agreed with the ward", 9));
    assert_eq!(listed[2].0, 1);
    assert_eq!(listed.len(), 3);
    let first = get(&bas_viewer(&suite), &name, 1).await.unwrap();
    assert_eq!(first, v1);
    assert_eq!(get(&editor, &name, 0).await.unwrap(), v3);
    assert_eq!(code(get(&editor, &name, 4).await), Code::NotFound);
    // Read through `sites/-` too, as the project is.
    let any = diagram_of(&p.name.replace("sites/BAS", "sites/-"));
    assert_eq!(get(&editor, &any, 0).await.unwrap().version, 3);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn removing_a_node_with_children_is_refused_naming_it_unless_cascade() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let editor = bas_editor(&suite);
    let name = diagram_of(&p.name);
    let v1 = edit(&editor, request(&name, "", frailty_edits()))
        .await
        .unwrap();
    let err = edit(
        &editor,
        request(&name, &v1.etag, vec![remove("flow", false)]),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("`flow`") && err.message().contains("`edd`, `mdt`"),
        "{err:?}"
    );
    assert_eq!(
        get(&editor, &name, 0).await.unwrap().version,
        1,
        "nothing stored"
    );
    // Cascade: `edd` hung from `flow` alone and goes; `mdt` stays under `care`; `edd-48`
    // lost `edd` but stays under `mdt`.
    let v2 = edit(
        &editor,
        request(&name, &v1.etag, vec![remove("flow", true)]),
    )
    .await
    .unwrap();
    assert_eq!(
        ids(&v2),
        ["aim", "care", "mdt", "cfs", "edd-48", "huddle", "cfs-ed"]
    );
    assert_eq!(v2.nodes[2].parents, ["care"]);
    assert_eq!(v2.nodes[4].parents, ["mdt"]);
    // A leaf goes without cascade.
    let v3 = edit(
        &editor,
        request(&name, &v2.etag, vec![remove("cfs-ed", false)]),
    )
    .await
    .unwrap();
    assert_eq!(v3.nodes.len(), 6);
    suite.stop().await.unwrap();
}

/// Decides cycle `name` with `decision`.
async fn decide(c: &Caller, name: &str, decision: pb::PdsaDecision) {
    let req = pb::DecidePdsaCycleRequest {
        name: name.into(),
        decision: decision as i32,
        ..Default::default()
    };
    c.projects().decide_pdsa_cycle(req).await.unwrap();
}

/// The frailty diagram with its change ideas linked to cycles: `edd-48` to an adopted one,
/// `huddle` to one running, `cfs-ed` to an abandoned one, and a fourth idea to none; and
/// `flow` tracked by a measure. The caller who made it, the diagram's name, the diagram.
async fn linked(suite: &TestSuite) -> (Caller, String, pb::DriverDiagram) {
    let p = running_project(suite).await;
    let editor = bas_editor(suite);
    let name = diagram_of(&p.name);
    let mut cycles = Vec::new();
    for change in ["EDD within 48 hours", "Board huddle", "CFS in ED"] {
        cycles.push(
            create_pdsa_cycle(&editor, &p.name, change)
                .await
                .unwrap()
                .name,
        );
    }
    decide(&editor, &cycles[0], pb::PdsaDecision::Adopt).await;
    decide(&editor, &cycles[2], pb::PdsaDecision::Abandon).await;
    let measure = pb::CreateMeasureRequest {
        parent: p.name.clone(),
        measure: Some(pb::Measure {
            metric: "sites/BAS/metrics/discharges-before-noon".into(),
            kind: pb::MeasureKind::Process as i32,
            ..Default::default()
        }),
        request_id: String::new(),
    };
    let measure = editor
        .projects()
        .create_measure(measure)
        .await
        .unwrap()
        .into_inner();
    let measure = measure.measure.expect("a measure").name;
    let mut edits = frailty_edits();
    let link = |id: &str, cycle: &str| {
        let mut n = node(id, K::ChangeIdea, "", &[]);
        n.pdsa_cycles = vec![cycle.to_owned()];
        update(n, &["pdsa_cycles"])
    };
    edits.push(link("edd-48", &cycles[0]));
    edits.push(link("huddle", &cycles[1]));
    edits.push(link("cfs-ed", &cycles[2]));
    edits.push(add(node(
        "pharm",
        K::ChangeIdea,
        "Pharmacist on the round",
        &["mdt"],
    )));
    let mut tracked = node("flow", K::PrimaryDriver, "", &[]);
    tracked.measures = vec![measure];
    edits.push(update(tracked, &["measures"]));
    let d = edit(&editor, request(&name, "", edits)).await.unwrap();
    (editor, name, d)
}

#[tokio::test]
async fn change_ideas_link_to_their_cycles_and_take_their_status_and_drivers_to_measures() {
    let suite = TestSuite::start().await;
    let (editor, name, d) = linked(&suite).await;
    let project = name.trim_end_matches("/driverDiagram");
    let by_id: HashMap<&str, &pb::DriverNode> =
        d.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let status = |id: &str| pb::PdsaStatus::try_from(by_id[id].pdsa_status).unwrap();
    assert_eq!(status("edd-48"), pb::PdsaStatus::Adopted);
    assert_eq!(status("huddle"), pb::PdsaStatus::Testing);
    assert_eq!(status("cfs-ed"), pb::PdsaStatus::Abandoned);
    assert_eq!(status("pharm"), pb::PdsaStatus::Untested);
    assert_eq!(
        status("flow"),
        pb::PdsaStatus::Unspecified,
        "only change ideas have one"
    );
    assert_eq!(
        by_id["edd-48"].pdsa_cycles,
        [format!("{project}/pdsaCycles/1")]
    );
    assert_eq!(by_id["flow"].measures.len(), 1);
    assert!(by_id["flow"].measures[0].starts_with(&format!("{project}/measures/")));
    // The status follows the cycles without an edit: deciding the huddle's cycle adopts it.
    decide(
        &editor,
        &format!("{project}/pdsaCycles/2"),
        pb::PdsaDecision::Adopt,
    )
    .await;
    let now = get(&editor, &name, 0).await.unwrap();
    assert_eq!(now.version, d.version);
    let huddle = now.nodes.iter().find(|n| n.id == "huddle").unwrap();
    assert_eq!(huddle.pdsa_status, pb::PdsaStatus::Adopted as i32);
    // Links only to this project's cycles and measures, on the right kinds of node.
    let mut other = node("pharm", K::ChangeIdea, "", &[]);
    other.pdsa_cycles = vec!["sites/BAS/projects/elsewhere/pdsaCycles/1".into()];
    let mut missing = node("pharm", K::ChangeIdea, "", &[]);
    missing.pdsa_cycles = vec![format!("{project}/pdsaCycles/99")];
    let mut on_driver = node("flow", K::PrimaryDriver, "", &[]);
    on_driver.pdsa_cycles = vec![format!("{project}/pdsaCycles/1")];
    let mut measured_idea = node("pharm", K::ChangeIdea, "", &[]);
    measured_idea.measures = by_id["flow"].measures.clone();
    for (n, path, field) in [
        (
            other,
            "pdsa_cycles",
            "edits[0].update_node.node.pdsa_cycles",
        ),
        (
            missing,
            "pdsa_cycles",
            "edits[0].update_node.node.pdsa_cycles",
        ),
        (
            on_driver,
            "pdsa_cycles",
            "edits[0].update_node.node.pdsa_cycles",
        ),
        (
            measured_idea,
            "measures",
            "edits[0].update_node.node.measures",
        ),
    ] {
        let err = edit(&editor, request(&name, "", vec![update(n, &[path])]))
            .await
            .unwrap_err();
        assert_eq!(fields(&err), [field], "{err:?}");
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_retried_edit_applies_once() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let editor = bas_editor(&suite);
    let name = diagram_of(&p.name);
    let mut req = request(&name, "\"0\"", frailty_edits());
    req.request_id = "0190b9e4-1111-7000-8000-000000000001".into();
    let first = edit(&editor, req.clone()).await.unwrap();
    // The retry carries the etag it read before the first call: it is answered as the
    // first was, not refused as stale, and writes nothing.
    let again = edit(&editor, req.clone()).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(history(&editor, &name).await.unwrap().len(), 1);
    req.edits.truncate(2);
    let err = edit(&editor, req).await.unwrap_err();
    assert_eq!(fields(&err), ["request_id"]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn every_bad_edit_names_its_field_and_nothing_is_stored() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let editor = bas_editor(&suite);
    let name = diagram_of(&p.name);
    edit(&editor, request(&name, "", frailty_edits()))
        .await
        .unwrap();
    let long = "x".repeat(501);
    let cases: Vec<(pb::EditDriverDiagramRequest, &str)> = vec![
        (request(&name, "", vec![]), "edits"),
        (
            request(&name, "", vec![pb::DriverDiagramEdit { edit: None }]),
            "edits[0]",
        ),
        (
            request(
                &name,
                "",
                vec![add(node("x", K::ChangeIdea, &long, &["mdt"]))],
            ),
            "edits[0].add_node.text",
        ),
        (
            request(
                &name,
                "",
                vec![add(node("x", K::ChangeIdea, "ok", &["flow"]))],
            ),
            "edits[0].add_node.parents",
        ),
        (
            request(
                &name,
                "",
                vec![
                    add(node("x", K::ChangeIdea, "ok", &["mdt"])),
                    add(node("x", K::ChangeIdea, "again", &["mdt"])),
                ],
            ),
            "edits[1].add_node.id",
        ),
        (
            request(
                &name,
                "",
                vec![add(node("aim2", K::Aim, "Another aim", &[]))],
            ),
            "edits[0].add_node.kind",
        ),
        (
            request(&name, "", vec![remove("nobody", false)]),
            "edits[0].remove_node.id",
        ),
        (
            request(
                &name,
                "",
                vec![update(node("mdt", K::ChangeIdea, "x", &[]), &["text"])],
            ),
            "edits[0].update_node.node.kind",
        ),
        (
            request(
                &name,
                "",
                vec![update(node("mdt", K::Unspecified, "x", &[]), &["kind"])],
            ),
            "edits[0].update_node.update_mask",
        ),
        (
            pb::EditDriverDiagramRequest {
                summary: "bad\u{7}".into(),
                ..request(&name, "", vec![remove("cfs-ed", false)])
            },
            "summary",
        ),
        (request(&p.name, "", vec![remove("cfs-ed", false)]), "name"),
    ];
    for (req, field) in cases {
        let err = edit(&editor, req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert_eq!(fields(&err), [field], "{err:?}");
    }
    // Over the bound of a request's edits: refused before it is decoded.
    let many: Vec<_> = (0..201).map(|i| remove(&format!("n{i}"), false)).collect();
    let err = edit(&editor, request(&name, "", many)).await.unwrap_err();
    assert_eq!(fields(&err), ["edits"], "{err:?}");
    // Past 200 nodes in the diagram.
    let grow: Vec<_> = (0..192)
        .map(|i| add(node(&format!("n{i}"), K::ChangeIdea, "Idea", &["mdt"])))
        .collect();
    let err = edit(&editor, request(&name, "", grow)).await.unwrap_err();
    assert_eq!(fields(&err), ["edits[191].add_node"], "{err:?}");
    assert_eq!(
        history(&editor, &name).await.unwrap().len(),
        1,
        "nothing stored"
    );
    assert_eq!(code(get(&editor, &name, -1).await), Code::InvalidArgument);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn only_the_projects_sites_read_it_and_only_its_editors_change_it() {
    let suite = TestSuite::start().await;
    let p = running_project(&suite).await;
    let name = diagram_of(&p.name);
    edit(&bas_team(&suite), request(&name, "", frailty_edits()))
        .await
        .unwrap();
    // BRM takes no part: refused by the lead site's name, whether or not the project
    // exists, and not found through `sites/-`.
    let brm = suite.caller("brm-team", &["improvement_team"], &["BRM"]);
    let denied = |r: Result<(), Status>| assert_eq!(code(r), Code::PermissionDenied);
    denied(get(&brm, &name, 0).await.map(drop));
    denied(history(&brm, &name).await.map(drop));
    denied(render(&brm, &name).await.map(drop));
    denied(
        edit(&brm, request(&name, "", vec![remove("cfs-ed", false)]))
            .await
            .map(drop),
    );
    let absent = diagram_of("sites/BAS/projects/no-such-project");
    denied(get(&brm, &absent, 0).await.map(drop));
    let any = name.replace("sites/BAS", "sites/-");
    assert_eq!(code(get(&brm, &any, 0).await), Code::NotFound);
    assert_eq!(code(render(&brm, &any).await), Code::NotFound);
    // SOU takes part: its viewer reads and draws it.
    let sou = suite.caller("sou-viewer", &["viewer"], &["SOU"]);
    assert_eq!(get(&sou, &any, 0).await.unwrap().version, 1);
    assert!(render(&sou, &name).await.unwrap().contains("<svg"));
    // A viewer cannot edit; nor can a contributor who is not on the team.
    let bystander = suite.employee_caller("bas-other", &["contributor"], &["BAS"], "20000099");
    for c in [bas_viewer(&suite), bystander] {
        denied(
            edit(&c, request(&name, "", vec![remove("cfs-ed", false)]))
                .await
                .map(drop),
        );
    }
    assert_eq!(history(&bas_viewer(&suite), &name).await.unwrap().len(), 1);
    suite.stop().await.unwrap();
}

/// An SVG length attribute.
fn number(n: roxmltree::Node<'_, '_>, attr: &str) -> f64 {
    n.attribute(attr)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{attr} of {n:?}"))
}

#[tokio::test]
async fn the_picture_has_four_columns_every_node_and_link_and_colours_ideas_by_status() {
    let suite = TestSuite::start().await;
    let (editor, name, d) = linked(&suite).await;
    // Grow it to 40 nodes, with long texts and markup to escape.
    let mut edits = Vec::new();
    for i in 0..4 {
        edits.push(add(node(
            &format!("p{i}"),
            K::PrimaryDriver,
            &format!("Primary driver {i}: patients & families <know> the plan for going home"),
            &["aim"],
        )));
    }
    for i in 0..10 {
        edits.push(add(node(
            &format!("s{i}"),
            K::SecondaryDriver,
            &format!("Secondary driver {i} with a longer explanation of what influences it"),
            &[&format!("p{}", i % 4)],
        )));
    }
    for i in 0..16 {
        edits.push(add(node(
            &format!("c{i}"),
            K::ChangeIdea,
            &format!("Change idea {i}"),
            &[&format!("s{}", i % 10), &format!("s{}", (i + 3) % 10)],
        )));
    }
    let d = edit(&editor, request(&name, &d.etag, edits)).await.unwrap();
    assert_eq!(d.nodes.len(), 40);
    let svg = render(&editor, &name).await.unwrap();
    // To look at it: QI_DRIVER_DIAGRAM_SVG=/tmp/40.svg cargo test -p qi-e2e --test e2e the_picture
    if let Ok(path) = std::env::var("QI_DRIVER_DIAGRAM_SVG") {
        std::fs::write(path, &svg).expect("the SVG is written");
    }
    let doc = roxmltree::Document::parse(&svg).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let (width, height) = (number(root, "width"), number(root, "height"));
    let columns: Vec<_> = root
        .children()
        .filter(|n| n.attribute("class") == Some("column"))
        .collect();
    let kinds: Vec<&str> = columns
        .iter()
        .filter_map(|c| c.attribute("data-kind"))
        .collect();
    assert_eq!(
        kinds,
        ["aim", "primary-driver", "secondary-driver", "change-idea"]
    );
    let counts: Vec<usize> = columns
        .iter()
        .map(|c| c.children().filter(|n| n.has_tag_name("g")).count())
        .collect();
    let want = |k: K| d.nodes.iter().filter(|n| n.kind == k as i32).count();
    assert_eq!(
        counts,
        [
            want(K::Aim),
            want(K::PrimaryDriver),
            want(K::SecondaryDriver),
            want(K::ChangeIdea)
        ]
    );
    assert_eq!(counts.iter().sum::<usize>(), 40);
    // Columns run left to right; in each, boxes do not overlap and stay on the page.
    let mut last_right = 0.0;
    for column in &columns {
        let rects: Vec<(f64, f64, f64, f64)> = column
            .descendants()
            .filter(|n| n.has_tag_name("rect"))
            .map(|r| {
                (
                    number(r, "x"),
                    number(r, "y"),
                    number(r, "width"),
                    number(r, "height"),
                )
            })
            .collect();
        let x = rects[0].0;
        assert!(x > last_right, "columns overlap");
        assert!(
            rects
                .iter()
                .all(|r| r.0 == x && r.0 + r.2 <= width && r.1 >= 0.0 && r.1 + r.3 <= height)
        );
        let mut ys: Vec<_> = rects.iter().map(|r| (r.1, r.1 + r.3)).collect();
        ys.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(
            ys.windows(2).all(|w| w[1].0 >= w[0].1),
            "boxes overlap: {ys:?}"
        );
        last_right = x + rects[0].2;
    }
    // One line per parent link.
    let links = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("link"))
        .count();
    assert_eq!(
        links,
        d.nodes.iter().map(|n| n.parents.len()).sum::<usize>()
    );
    // Change ideas coloured by status, the same colour for the same status, and four
    // different colours.
    let mut fills: HashMap<String, String> = HashMap::new();
    for g in columns[3].children().filter(|n| n.has_tag_name("g")) {
        let id = g.attribute("data-id").unwrap();
        let status = g.attribute("data-status").unwrap();
        let n = d.nodes.iter().find(|n| n.id == id).unwrap();
        let want = match pb::PdsaStatus::try_from(n.pdsa_status).unwrap() {
            pb::PdsaStatus::Adopted => "adopted",
            pb::PdsaStatus::Testing => "testing",
            pb::PdsaStatus::Abandoned => "abandoned",
            pb::PdsaStatus::Untested | pb::PdsaStatus::Unspecified => "untested",
        };
        assert_eq!(status, want, "{id}");
        let rect = g.children().find(|n| n.has_tag_name("rect")).unwrap();
        let fill = rect.attribute("fill").unwrap().to_owned();
        assert_eq!(
            fills
                .entry(status.to_owned())
                .or_insert_with(|| fill.clone()),
            &fill
        );
    }
    assert_eq!(fills.len(), 4, "{fills:?}");
    let distinct: std::collections::HashSet<_> = fills.values().collect();
    assert_eq!(distinct.len(), 4);
    // The text comes back as written, wrapped over lines, markup escaped.
    let p0 = columns[1]
        .children()
        .find(|n| n.attribute("data-id") == Some("p0"))
        .unwrap();
    let lines: Vec<&str> = p0
        .descendants()
        .filter(|n| {
            n.has_tag_name("tspan") && n.parent().and_then(|t| t.attribute("class")).is_none()
        })
        .filter_map(|t| t.text())
        .collect();
    assert!(lines.len() > 1, "wrapped: {lines:?}");
    assert_eq!(
        lines.join(" "),
        "Primary driver 0: patients & families <know> the plan for going home"
    );
    suite.stop().await.unwrap();
}
