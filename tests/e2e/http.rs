//! HTTP/JSON through the gateway (issue 35), over real HTTP: each RPC's `google.api.http`
//! rule maps a request onto it, through the same token, policy, site checks and audit as
//! gRPC; answers in the proto3 JSON mapping, errors as `google.rpc.Status` JSON with the
//! HTTP status their code maps to, server streams as newline-delimited JSON.

use qi_e2e::TestSuite;
use qi_e2e::projects::{create_project, with_aim};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An HTTP client of the suite's gateway.
struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    fn of(suite: &TestSuite) -> Http {
        Http {
            base: format!("http://{}", suite.addr),
            client: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let resp = self.request(method, path, token, body).await;
        let status = resp.status();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The response, as soon as its headers are in (a stream's body is still coming).
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        req.send().await.unwrap()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }
}

/// The field violations of an error body.
fn violations(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .flat_map(|d| d["fieldViolations"].as_array().cloned().unwrap_or_default())
        .map(|v| v["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn reads_creates_and_custom_methods_answer_in_json_as_grpc_would() {
    let suite = TestSuite::start().await;
    let http = Http::of(&suite);
    let team = suite.caller("team", &["improvement_team"], &["*"]);
    let token = suite.token("team", &["improvement_team"], &["*"]);
    let project = create_project(&team, "BAS", "flow", with_aim("Discharge by noon"))
        .await
        .unwrap();

    // A read: the response (the resource in its field) in the proto3 JSON mapping.
    let (status, got) = http
        .get(&format!("/v1/{}", project.name), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let got = &got["project"];
    assert_eq!(got["name"], project.name);
    assert_eq!(got["title"], "Discharge by noon");
    assert_eq!(got["state"], "PROJECT_STATE_SCOPING");
    assert!(got["createTime"].as_str().unwrap().ends_with('Z'), "{got}");
    // A list, its query parameters filling the request.
    let (status, listed) = http
        .get(
            "/v1/sites/-/projects?pageSize=1&state=PROJECT_STATE_SCOPING",
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["projects"][0]["name"], project.name);

    // A create, retried with its request id: one idea.
    let idea = json!({"title": "Quiet hours", "submitter": "A. Nurse", "theme": "Patient flow"});
    let path = "/v1/sites/BAS/ideas?requestId=0c6d1f4e-1b7a-4d0a-9a1e-3f6c2b9d8e71";
    let (status, first) = http.post(path, &token, idea.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (_, again) = http.post(path, &token, idea).await;
    assert_eq!(first["idea"]["name"], again["idea"]["name"]);
    assert_eq!(first["idea"]["state"], "IDEA_STATE_SUBMITTED");

    // A custom method.
    let (status, started) = http
        .post(&format!("/v1/{}:start", project.name), &token, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    assert_eq!(started["project"]["state"], "PROJECT_STATE_IN_PROGRESS");
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn each_error_class_has_its_http_status_and_a_google_rpc_status_body() {
    let suite = TestSuite::start().await;
    let http = Http::of(&suite);
    let team = suite.caller("team", &["improvement_team"], &["*"]);
    let token = suite.token("team", &["improvement_team"], &["*"]);
    let sou = create_project(&team, "SOU", "falls", with_aim("Fewer falls"))
        .await
        .unwrap();
    let path = format!("/v1/{}", sou.name);

    let (status, body) = http.get(&path, None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!(16)),
        "{body}"
    );
    let bas = suite.token("bas", &["viewer"], &["BAS"]);
    let (status, body) = http.get(&path, Some(&bas)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::FORBIDDEN, json!(7)),
        "{body}"
    );
    let (status, body) = http.get("/v1/sites/SOU/projects/nope", Some(&token)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!(5)),
        "{body}"
    );
    let (status, body) = http
        .post(
            "/v1/sites/BAS/ideas",
            &token,
            json!({"submitter": "A. Nurse"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        violations(&body).contains(&"idea.title".to_owned()),
        "{body}"
    );
    // An id taken: a conflict. A request id sent again with another body: a bad request,
    // naming it.
    let idea = json!({"title": "Quiet hours", "submitter": "A. Nurse"});
    let named = "/v1/sites/BAS/ideas?ideaId=quiet";
    assert_eq!(
        http.post(named, &token, idea.clone()).await.0,
        StatusCode::OK
    );
    let (status, body) = http.post(named, &token, idea.clone()).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!(6)),
        "{body}"
    );
    let retried = "/v1/sites/BAS/ideas?requestId=5e0b8c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b";
    assert_eq!(http.post(retried, &token, idea).await.0, StatusCode::OK);
    let other = json!({"title": "Loud hours", "submitter": "A. Nurse"});
    let (status, body) = http.post(retried, &token, other).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(violations(&body), ["request_id"]);
    // What the transcoding itself refuses: a bad query value, names its field; a path no
    // rule has; a verb the path does not take.
    let (status, body) = http
        .get("/v1/sites/-/projects?pageSize=lots", Some(&token))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(violations(&body), ["pageSize"]);
    let (status, body) = http.get("/v1/nowhere", Some(&token)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!(5)),
        "{body}"
    );
    let (status, _) = http
        .send(reqwest::Method::DELETE, &path, Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);
    suite.stop().await.unwrap();
}

/// Reads `resp`'s lines into `text` until one names `name`; that line.
async fn line_naming(resp: &mut reqwest::Response, text: &mut String, name: &str) -> Value {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let lines: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if let Some(line) = lines.iter().find(|l| l["resourceName"] == name) {
                return line.clone();
            }
            match resp.chunk().await.unwrap() {
                Some(chunk) => text.push_str(std::str::from_utf8(&chunk).unwrap()),
                None => panic!("the stream ended: {text}"),
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn a_server_stream_answers_a_line_of_json_per_message_past_the_call_timeout() {
    // Calls end after a second; a stream over HTTP, as over gRPC, runs for as long as it is
    // read (deadlines bound a call's answer, not a feed).
    let suite = TestSuite::start_with(&[("QI_REQUEST_TIMEOUT_MS", "1000")]).await;
    let team = suite.caller("team", &["improvement_team"], &["*"]);
    let token = suite.token("team", &["improvement_team"], &["*"]);
    let project = create_project(&team, "BAS", "flow", with_aim("Discharge by noon"))
        .await
        .unwrap();
    let mut resp = Http::of(&suite)
        .request(
            reqwest::Method::GET,
            "/v1/projects/changes:watch?start=WATCH_START_OLDEST",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[reqwest::header::CONTENT_TYPE],
        "application/x-ndjson"
    );
    // Lines as they come, until the project's creation (the feed never ends by itself).
    let mut text = String::new();
    let created = line_naming(&mut resp, &mut text, &project.name).await;
    assert_eq!(created["kind"], "CHANGE_KIND_CREATED");
    assert_eq!(created["project"]["title"], "Discharge by noon");
    // Past the call timeout, the stream still brings what comes.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let later = create_project(&team, "BAS", "later", with_aim("Later"))
        .await
        .unwrap();
    let line = line_naming(&mut resp, &mut text, &later.name).await;
    assert_eq!(line["project"]["title"], "Later");
    drop(resp);
    suite.stop().await.unwrap();
}

#[tokio::test]
async fn the_openapi_document_is_served_and_every_path_it_documents_answers() {
    let suite = TestSuite::start().await;
    let http = Http::of(&suite);
    // Served without a token: it describes, it holds no data.
    let (status, doc) = http.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let generated: Value =
        serde_json::from_slice(&qi_gateway::openapi_document().unwrap()).unwrap();
    assert_eq!(doc, generated, "the served document is `qi openapi`'s");
    let get_project = &doc["paths"]["/v1/sites/{site}/projects/{project}"]["get"];
    assert_eq!(get_project["operationId"], "ProjectService_GetProject");
    assert!(
        doc["components"]["schemas"]["qi.projects.v1.Project"]["properties"]["createTime"]["format"]
            == "date-time"
    );
    // Each documented path and method reaches its RPC: whatever the RPC answers (the names
    // are made up), never the transcoder's "no method" or "not this verb".
    let token = suite.token("admin", &["admin"], &["*"]);
    let mut asked = 0;
    for (path, methods) in doc["paths"].as_object().unwrap() {
        let mut url = String::new();
        for (i, part) in path.split('{').enumerate() {
            if i == 0 {
                url.push_str(part);
            } else {
                let (param, rest) = part.split_once('}').unwrap();
                url.push_str(if param == "site" { "BAS" } else { "x1" });
                url.push_str(rest);
            }
        }
        for (method, op) in methods.as_object().unwrap() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            let body = op.get("requestBody").map(|_| json!({}));
            let resp = http.request(method.clone(), &url, Some(&token), body).await;
            let status = resp.status();
            let streaming = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .is_some_and(|v| v == "application/x-ndjson");
            let text = if streaming {
                String::new()
            } else {
                resp.text().await.unwrap()
            };
            assert!(
                !text.contains("no method is at") && status != StatusCode::NOT_IMPLEMENTED,
                "{method} {url}: {status} {text}"
            );
            asked += 1;
        }
    }
    assert!(asked >= 160, "{asked} operations");
    suite.stop().await.unwrap();
}
