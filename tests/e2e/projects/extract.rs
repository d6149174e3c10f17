//! Nightly extracts of ideas and projects (issue 37): a List's `filter` takes `update_time`
//! bounds, `state` and `site`, and `order_by = "update_time"` reads oldest change first, page
//! by page, so an extract reads only what changed since the last and can resume; over gRPC
//! and over HTTP/JSON alike.

use qi_e2e::projects::{
    create_project, list_ideas, list_projects, review_idea, start_project, submit_idea, with_aim,
};
use qi_e2e::{Caller, TestSuite, fields};
use qi_proto::projects as pb;

/// A timestamp as a filter writes it.
fn rfc3339(t: Option<prost_types::Timestamp>) -> String {
    time(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Every idea a request lists, page by page (`page_size` 1), with the number of pages.
async fn all_ideas(c: &Caller, req: pb::ListIdeasRequest) -> (Vec<String>, usize) {
    let (mut names, mut pages, mut token) = (Vec::new(), 0, String::new());
    loop {
        let resp = c
            .projects()
            .list_ideas(pb::ListIdeasRequest {
                page_size: 1,
                page_token: token,
                ..req.clone()
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        names.extend(resp.ideas.into_iter().map(|i| i.name));
        if resp.next_page_token.is_empty() {
            return (names, pages);
        }
        token = resp.next_page_token;
    }
}

/// A team of BAS and SOU, and three ideas it submitted, oldest first.
async fn three_ideas(suite: &TestSuite) -> (Caller, Vec<pb::Idea>) {
    let team = suite.caller("team", &["improvement_team"], &["BAS", "SOU"]);
    let mut ideas = Vec::new();
    for (i, site) in ["BAS", "SOU", "BAS"].iter().enumerate() {
        ideas.push(
            submit_idea(&team, site, &format!("Idea {i}"))
                .await
                .unwrap(),
        );
    }
    (team, ideas)
}

#[tokio::test]
async fn an_extract_reads_what_changed_since_oldest_change_first() {
    let suite = TestSuite::start().await;
    let (team, ideas) = three_ideas(&suite).await;
    let early = create_project(&team, "BAS", "early", with_aim("Early"))
        .await
        .unwrap();
    let left = create_project(&team, "SOU", "left", with_aim("Left"))
        .await
        .unwrap();
    // The last extract ran when the last of these was written.
    let since = rfc3339(left.update_time);

    // Since then: the first idea changed state, a new one came, the first project started.
    review_idea(&team, &ideas[0].name).await.unwrap();
    let new = submit_idea(&team, "SOU", "Idea 3").await.unwrap();
    start_project(&team, &early.name).await.unwrap();

    let extract = pb::ListIdeasRequest {
        filter: format!("update_time > \"{since}\""),
        order_by: "update_time".into(),
        ..list_ideas("sites/-")
    };
    let (names, pages) = all_ideas(&team, extract.clone()).await;
    assert_eq!(names, [ideas[0].name.clone(), new.name.clone()]);
    assert_eq!(pages, 2);
    // Everything, oldest change first: the untouched ones, then the changed ones in order.
    let (names, _) = all_ideas(
        &team,
        pb::ListIdeasRequest {
            filter: String::new(),
            ..extract.clone()
        },
    )
    .await;
    assert_eq!(
        names,
        [&ideas[1], &ideas[2], &ideas[0], &new].map(|i| i.name.clone())
    );
    // With state and site terms.
    let (names, _) = all_ideas(
        &team,
        pb::ListIdeasRequest {
            filter: format!("update_time > \"{since}\" AND state = SUBMITTED AND site = SOU"),
            ..extract.clone()
        },
    )
    .await;
    assert_eq!(names, [new.name.as_str()]);
    // A caller of BAS asking for SOU's finds nothing, as SOU's rows are not there for them.
    let bas = suite.caller("bas", &["viewer"], &["BAS"]);
    let (names, _) = all_ideas(
        &bas,
        pb::ListIdeasRequest {
            filter: "site = SOU".into(),
            ..extract.clone()
        },
    )
    .await;
    assert!(names.is_empty(), "{names:?}");

    let projects = team
        .projects()
        .list_projects(pb::ListProjectsRequest {
            filter: format!("update_time > \"{since}\""),
            order_by: "update_time".into(),
            ..list_projects("sites/-")
        })
        .await
        .unwrap()
        .into_inner()
        .projects;
    assert_eq!(
        projects.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        [early.name.as_str()]
    );

    // The same extract over HTTP/JSON.
    let token = suite.token("team", &["improvement_team"], &["BAS", "SOU"]);
    let body = reqwest::Client::new()
        .get(format!("http://{}/v1/sites/-/ideas", suite.addr))
        .query(&[
            ("filter", format!("update_time > \"{since}\"").as_str()),
            ("orderBy", "update_time"),
        ])
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let over_http: Vec<&str> = body["ideas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(over_http, [ideas[0].name.as_str(), new.name.as_str()]);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn an_unsupported_filter_or_order_is_refused_naming_it() {
    let suite = TestSuite::start().await;
    let team = suite.caller("team", &["improvement_team"], &["BAS"]);
    let cases = [
        ("update_time > yesterday", "", "filter", "update_time"),
        (
            "update_time = 2026-12-01T00:00:00Z",
            "",
            "filter",
            "update_time",
        ),
        ("colour = red", "", "filter", "colour"),
        ("state > SUBMITTED", "", "filter", "state"),
        ("", "title", "order_by", "update_time"),
        ("", "update_time desc", "order_by", "update_time"),
    ];
    for (filter, order_by, field, named) in cases {
        let status = team
            .projects()
            .list_ideas(pb::ListIdeasRequest {
                filter: filter.into(),
                order_by: order_by.into(),
                ..list_ideas("sites/-")
            })
            .await
            .unwrap_err();
        assert_eq!(fields(&status), [field], "{filter} {order_by}");
        assert!(
            status.message().contains(named),
            "{filter} {order_by}: {}",
            status.message()
        );
        let status = team
            .projects()
            .list_projects(pb::ListProjectsRequest {
                filter: filter.replace("SUBMITTED", "SCOPING"),
                order_by: order_by.into(),
                ..list_projects("sites/-")
            })
            .await
            .unwrap_err();
        assert_eq!(fields(&status), [field], "projects: {filter} {order_by}");
    }
    suite.stop().await.unwrap();
}

/// `qi export` of `collection` as a client runs it: the rows it wrote, and what it said.
async fn export(
    suite: &TestSuite,
    collection: &str,
    since: Option<chrono::DateTime<chrono::Utc>>,
    format: qi::export::Format,
) -> anyhow::Result<(String, qi::export::Exported)> {
    let args = qi::export::ExportArgs {
        collection: collection.into(),
        since,
        site: None,
        format,
        gateway: format!("http://{}", suite.addr),
        token: suite.token("bi", &["viewer"], &["*"]),
        page_size: 2,
    };
    let (mut out, mut progress) = (Vec::new(), Vec::new());
    let done = qi::export::run(&args, &mut out, &mut progress, true).await?;
    assert!(
        String::from_utf8(progress)?.ends_with(&format!("{collection}: {} rows\n", done.rows)),
        "progress shown"
    );
    Ok((String::from_utf8(out)?, done))
}

/// A timestamp as chrono holds it.
fn time(t: Option<prost_types::Timestamp>) -> chrono::DateTime<chrono::Utc> {
    let t = t.expect("a time");
    chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap()).unwrap()
}

#[tokio::test]
async fn qi_export_pages_through_a_collection_and_resumes_where_it_says() {
    use qi::export::Format;
    let suite = TestSuite::start().await;
    let (team, ideas) = three_ideas(&suite).await;

    // Everything, in pages of two, oldest change first, one JSON object a line.
    let (jsonl, done) = export(&suite, "ideas", None, Format::Jsonl).await.unwrap();
    let names: Vec<String> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["name"].to_string())
        .map(|n| n.trim_matches('"').to_owned())
        .collect();
    assert_eq!(
        names,
        ideas.iter().map(|i| i.name.clone()).collect::<Vec<_>>()
    );
    let newest = time(ideas[2].update_time);
    assert_eq!(done.rows, 3);
    assert_eq!(
        done.resume,
        Some(newest - qi_platform::extract::RESUME_OVERLAP)
    );

    // The same as CSV: a header of the idea's fields, a row each.
    let (csv, _) = export(&suite, "ideas", None, Format::Csv).await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("name,title,description,ward,"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("updateTime"), "{}", lines[0]);
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[1].starts_with(&format!("{},Idea 0,", ideas[0].name)),
        "{}",
        lines[1]
    );
    let submitted = ideas[0].submit_date.expect("a submit date");
    let submitted = format!(
        ",{:04}-{:02}-{:02},",
        submitted.year, submitted.month, submitted.day
    );
    assert!(
        lines[1].contains(&submitted),
        "a date as a date: {}",
        lines[1]
    );

    // After a change and a new idea: since the last run's newest, only those two; from the
    // resume point it gave, the overlap too.
    review_idea(&team, &ideas[0].name).await.unwrap();
    let new = submit_idea(&team, "SOU", "Idea 3").await.unwrap();
    let (jsonl, done) = export(&suite, "ideas", Some(newest), Format::Jsonl)
        .await
        .unwrap();
    assert_eq!(done.rows, 2);
    assert!(jsonl.lines().next().unwrap().contains(&ideas[0].name));
    assert!(jsonl.lines().nth(1).unwrap().contains(&new.name));
    let (_, overlapped) = export(
        &suite,
        "ideas",
        Some(newest - qi_platform::extract::RESUME_OVERLAP),
        Format::Jsonl,
    )
    .await
    .unwrap();
    assert_eq!(overlapped.rows, 4);

    // Staff the same way: after an HR sync, what changed since it, a leaver included.
    let (jsonl, staff) = export(&suite, "staff", Some(newest), Format::Jsonl)
        .await
        .unwrap();
    assert_eq!((staff.rows, jsonl.as_str()), (0, ""));
    suite.stop().await.unwrap();
}
