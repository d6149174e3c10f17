//! Browsers on the trust's intranet (issue 36): a page served from an allowed origin
//! (`QI_CORS_ALLOWED_ORIGINS`) calls the gateway by gRPC-Web and by HTTP/JSON; a page from any
//! other origin is refused by the browser, as the gateway sends it no CORS headers. Proven in
//! headless Chromium, and the headers checked over plain HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use prost::Message as _;
use qi_e2e::TestSuite;
use qi_proto::training as pb;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const INTRANET: &str = "https://intranet.example.nhs.uk";

/// A preflight of `origin` for a gRPC-Web call, as a browser sends it.
async fn preflight(suite: &TestSuite, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!(
                "http://{}/qi.training.v1.TrainingService/ListCourses",
                suite.addr
            ),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn cors_headers(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn an_allowed_origin_is_answered_with_cors_headers_and_no_other_is() {
    let suite = TestSuite::start_with(&[(
        "QI_CORS_ALLOWED_ORIGINS",
        "https://intranet.example.nhs.uk, http://dashboards.example.nhs.uk:8080",
    )])
    .await;
    let audited = "SELECT count(*) FROM gateway.audit_event \
                   WHERE method = '/qi.training.v1.TrainingService/ListCourses'";
    let before = suite.count(audited).await;

    let ok = preflight(&suite, INTRANET).await;
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(header(&ok, "access-control-allow-origin"), INTRANET);
    assert!(header(&ok, "access-control-allow-methods").contains("POST"));
    let allowed = header(&ok, "access-control-allow-headers");
    for h in [
        "authorization",
        "content-type",
        "x-grpc-web",
        "x-user-agent",
        "grpc-timeout",
        "traceparent",
    ] {
        assert!(allowed.contains(h), "{h} not in {allowed}");
    }
    assert_eq!(header(&ok, "access-control-max-age"), "3600");

    // Another origin (or the right host on the wrong scheme) gets nothing a browser would
    // take as leave to read.
    for other in [
        "https://elsewhere.example.com",
        "http://intranet.example.nhs.uk",
    ] {
        let refused = preflight(&suite, other).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{other}");
        assert!(cors_headers(&refused).is_empty(), "{other}: {refused:?}");
    }

    // An actual call from the allowed origin exposes the gRPC status; its answer is the
    // same as without an origin.
    let viewer = suite.token("intranet", &["viewer"], &["BAS"]);
    let http = reqwest::Client::new();
    let list = |origin: &'static str| {
        http.get(format!("http://{}/v1/trust/courses", suite.addr))
            .bearer_auth(&viewer)
            .header("origin", origin)
            .send()
    };
    let json = list(INTRANET).await.unwrap();
    assert_eq!(json.status(), StatusCode::OK);
    assert_eq!(header(&json, "access-control-allow-origin"), INTRANET);
    let exposed = header(&json, "access-control-expose-headers").to_owned();
    for h in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(h), "{h} not in {exposed}");
    }
    assert!(json.text().await.unwrap().contains("QSIR Practitioner"));
    let other = list("https://elsewhere.example.com").await.unwrap();
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "served; the browser withholds it"
    );
    assert!(cors_headers(&other).is_empty(), "{other:?}");

    // Preflights are not decisions: the two calls above are the only new audit events.
    qi_e2e::until("the two calls' audit events", || async {
        suite.count(audited).await >= before + 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(suite.count(audited).await, before + 2);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn preflights_spend_the_addresss_budget_for_unauthenticated_traffic() {
    // One a second, bursts of ten.
    let suite = TestSuite::start_with(&[
        ("QI_CORS_ALLOWED_ORIGINS", INTRANET),
        ("QI_AUTH_FAILURE_RATE", "1"),
    ])
    .await;
    let mut answered = Vec::new();
    for _ in 0..14 {
        answered.push(preflight(&suite, INTRANET).await.status());
    }
    assert!(
        answered[..8].iter().all(StatusCode::is_success),
        "{answered:?}"
    );
    assert!(
        answered.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{answered:?}"
    );
    // The budget is the address's: a token does not buy it back at once.
    let viewer = suite.token("intranet", &["viewer"], &["BAS"]);
    let status = reqwest::Client::new()
        .get(format!("http://{}/v1/trust/courses", suite.addr))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    suite.stop().await.unwrap();
}

/// What a page reports of its calls to the gateway: `POST /report` on the page's own
/// server, with the JSON the script gathered.
type Reports = tokio::sync::mpsc::Receiver<Value>;

/// Serves the page (`GET /`) and takes its report (`POST /report`) on `listener`: a few lines
/// of HTTP/1.1, enough for one browser.
fn serve_page(listener: TcpListener, page: String) -> Reports {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let (page, tx) = (page.clone(), tx.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The head, then as much body as it announces.
                let (head, body_at) = loop {
                    let Ok(n) = conn.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (String::from_utf8_lossy(&buf[..end]).to_lowercase(), end + 4);
                    }
                };
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < body_at + length {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let (status, body) = if head.starts_with("post /report") {
                    let report = serde_json::from_slice(&buf[body_at..body_at + length])
                        .unwrap_or(Value::Null);
                    let _ = tx.send(report).await;
                    ("204 No Content", String::new())
                } else if head.starts_with("get / ") {
                    ("200 OK", page)
                } else {
                    ("404 Not Found", String::new())
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    rx
}

/// The page: a gRPC-Web `ListCourses` (as a generated client frames it) and the same read
/// over HTTP/JSON, each to the gateway on another origin; it reports what it could read.
fn page(gateway: SocketAddr, token: &str) -> String {
    let request = pb::ListCoursesRequest {
        parent: "trust".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(request.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&request);
    format!(
        r#"<!doctype html><title>QI dashboard</title><script>
const gateway = "http://{gateway}";
const token = "{token}";
async function call(url, init) {{
  try {{
    const r = await fetch(url, init);
    const bytes = new Uint8Array(await r.arrayBuffer());
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return {{ status: r.status, grpcStatus: r.headers.get("grpc-status"), body: btoa(binary) }};
  }} catch (e) {{
    return {{ error: String(e) }};
  }}
}}
(async () => {{
  const report = {{
    grpcWeb: await call(gateway + "/qi.training.v1.TrainingService/ListCourses", {{
      method: "POST",
      headers: {{
        "content-type": "application/grpc-web+proto",
        "x-grpc-web": "1",
        "x-user-agent": "grpc-web-javascript/0.1",
        authorization: "Bearer " + token,
      }},
      body: new Uint8Array({frame:?}),
    }}),
    json: await call(gateway + "/v1/trust/courses", {{
      headers: {{ authorization: "Bearer " + token }},
    }}),
  }};
  await fetch("/report", {{ method: "POST", body: JSON.stringify(report) }});
}})();
</script>"#
    )
}

/// The browser the test drives: `QI_CHROMIUM`, else Debian's `chromium` (or Chrome) on the
/// PATH.
fn browser() -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os("QI_CHROMIUM") {
        return Some(path.into());
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// Opens the page of `origin` in headless Chromium and waits for its report.
async fn visit(chromium: &std::path::Path, origin: &str, reports: &mut Reports) -> Value {
    let profile = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(chromium)
        .args([
            "--headless=new",
            // As root (CI's containers) Chromium has no sandbox to start.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{origin}/"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("Chromium starts");
    let report = tokio::time::timeout(Duration::from_secs(40), reports.recv())
        .await
        .expect("the page reports within 40 s")
        .expect("a report");
    let _ = child.kill().await;
    report
}

/// The course titles in a gRPC-Web answer's first (message) frame.
fn courses_of(grpc_web: &Value) -> Vec<String> {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD
        .decode(grpc_web["body"].as_str().unwrap_or_default())
        .unwrap_or_default();
    assert!(
        body.len() > 5 && body[0] == 0,
        "a message frame: {grpc_web}"
    );
    let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    pb::ListCoursesResponse::decode(&body[5..5 + len])
        .unwrap()
        .courses
        .into_iter()
        .map(|c| c.display_name)
        .collect()
}

#[tokio::test]
async fn a_page_on_an_allowed_origin_reads_the_gateway_in_a_real_browser_and_others_cannot() {
    let Some(chromium) = browser() else {
        assert!(
            std::env::var_os("QI_REQUIRE_BROWSER").is_none(),
            "QI_REQUIRE_BROWSER is set but no Chromium was found (set QI_CHROMIUM or install \
             Debian's chromium)"
        );
        eprintln!(
            "SKIPPED: no Chromium on this machine (apt-get install chromium, or set QI_CHROMIUM)"
        );
        return;
    };
    let allowed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let allowed_origin = format!("http://{}", allowed.local_addr().unwrap());
    let other_origin = format!("http://{}", other.local_addr().unwrap());
    let suite = TestSuite::start_with(&[("QI_CORS_ALLOWED_ORIGINS", &allowed_origin)]).await;
    let token = suite.token("intranet", &["viewer"], &["BAS"]);
    let mut from_allowed = serve_page(allowed, page(suite.addr, &token));
    let mut from_other = serve_page(other, page(suite.addr, &token));

    let (seen, refused) = tokio::join!(
        visit(&chromium, &allowed_origin, &mut from_allowed),
        visit(&chromium, &other_origin, &mut from_other),
    );

    assert_eq!(seen["grpcWeb"]["status"], 200, "{seen}");
    assert_eq!(
        seen["grpcWeb"]["grpcStatus"],
        Value::Null,
        "a message, not trailers-only"
    );
    let titles = courses_of(&seen["grpcWeb"]);
    assert!(
        titles.iter().any(|t| t == "QSIR Practitioner"),
        "{titles:?}"
    );
    assert_eq!(seen["json"]["status"], 200, "{seen}");
    let json: Value = {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(seen["json"]["body"].as_str().unwrap())
            .unwrap();
        serde_json::from_slice(&raw).unwrap()
    };
    assert!(
        json["courses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["displayName"] == "QSIR Practitioner"),
        "{json}"
    );

    for call in ["grpcWeb", "json"] {
        let error = refused[call]["error"].as_str().unwrap_or_default();
        assert!(error.contains("Failed to fetch"), "{call}: {refused}");
    }
    suite.stop().await.unwrap();
}
