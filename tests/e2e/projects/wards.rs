//! Wards: added by a site's improvement team at its own sites, each id once per site, read
//! and listed within the caller's sites, in pages.

use qi_e2e::projects::create_ward;
use qi_e2e::{Caller, TestSuite, code, fields};
use qi_proto::projects as pb;
use tonic::Code;

use super::{bas_team, bas_viewer, trust_team};

/// The wards [`five_wards_at_bas`] adds, in order.
const BAS_WARDS: [&str; 5] = ["ash", "beech", "cedar", "elm", "oak"];

/// Five wards at BAS, added by BAS's team, and Willow at SOU, added by the trust's.
async fn five_wards_at_bas(suite: &TestSuite) {
    let bas = bas_team(suite);
    for w in BAS_WARDS {
        create_ward(&bas, "BAS", w).await.unwrap();
    }
    create_ward(&trust_team(suite), "SOU", "willow")
        .await
        .unwrap();
}

/// A page of `page_size` of the wards under `parent`.
fn list_wards(parent: &str, page_size: i32, page_token: &str) -> pb::ListWardsRequest {
    pb::ListWardsRequest {
        parent: parent.into(),
        page_size,
        page_token: page_token.into(),
    }
}

#[tokio::test]
async fn a_sites_team_adds_wards_at_its_own_site_only() {
    let suite = TestSuite::start().await;
    let bas = bas_team(&suite);
    create_ward(&bas, "BAS", "ash").await.unwrap();
    assert_eq!(
        code(create_ward(&bas, "SOU", "ash").await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(create_ward(&bas_viewer(&suite), "BAS", "fir").await),
        Code::PermissionDenied
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_ward_id_is_taken_once_at_a_site() {
    let suite = TestSuite::start().await;
    let bas = bas_team(&suite);
    create_ward(&bas, "BAS", "ash").await.unwrap();
    assert_eq!(
        code(create_ward(&bas, "BAS", "ash").await),
        Code::AlreadyExists
    );
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_ward_at_an_unknown_site_names_its_parent() {
    let suite = TestSuite::start().await;
    let err = create_ward(&trust_team(&suite), "XYZ", "ash")
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["parent"]);
    suite.stop().await.unwrap();
}

/// The pages of two of the wards under `sites/-` as `c` lists them: each page's names and
/// the token to the next (empty on the last).
async fn ward_pages(c: &Caller) -> Vec<(Vec<String>, String)> {
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let resp = c
            .projects()
            .list_wards(list_wards("sites/-", 2, &token))
            .await
            .unwrap()
            .into_inner();
        let names = resp.wards.into_iter().map(|w| w.name).collect();
        token = resp.next_page_token;
        pages.push((names, token.clone()));
        if token.is_empty() {
            return pages;
        }
    }
}

#[tokio::test]
async fn wards_page_in_order_through_the_callers_sites_only() {
    let suite = TestSuite::start().await;
    five_wards_at_bas(&suite).await;
    let pages = ward_pages(&bas_viewer(&suite)).await;
    assert_eq!(pages.len(), 3);
    let seen: Vec<String> = pages.into_iter().flat_map(|(names, _)| names).collect();
    let expected: Vec<String> = BAS_WARDS
        .iter()
        .map(|w| format!("sites/BAS/wards/{w}"))
        .collect();
    assert_eq!(seen, expected, "a BAS caller sees only BAS wards");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_ward_page_token_is_bound_to_its_parent() {
    let suite = TestSuite::start().await;
    five_wards_at_bas(&suite).await;
    let viewer = bas_viewer(&suite);
    let pages = ward_pages(&viewer).await;
    let tokens: Vec<&String> = pages
        .iter()
        .map(|(_, t)| t)
        .filter(|t| !t.is_empty())
        .collect();
    assert_eq!(tokens.len(), 2, "two pages follow the first");
    for token in tokens {
        let other = viewer
            .projects()
            .list_wards(list_wards("sites/BAS", 2, token))
            .await
            .unwrap_err();
        assert_eq!(fields(&other), ["page_token"]);
    }
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn a_ward_is_read_within_the_callers_sites_only() {
    let suite = TestSuite::start().await;
    five_wards_at_bas(&suite).await;
    let viewer = bas_viewer(&suite);
    let get = |name: &str| pb::GetWardRequest { name: name.into() };
    assert_eq!(
        code(
            viewer
                .projects()
                .get_ward(get("sites/SOU/wards/willow"))
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        code(
            viewer
                .projects()
                .get_ward(get("sites/BAS/wards/nope"))
                .await
        ),
        Code::NotFound
    );
    suite.stop().await.unwrap();
}
