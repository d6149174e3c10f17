//! Requests that would decode to far more than they weigh (issue 19): a repeated field over
//! its contract bound, made of empty elements of two bytes each, is refused
//! INVALID_ARGUMENT naming the field before anything decodes it, and nothing is stored:
//! through the gateway and straight to the service, for a unary call
//! (`BatchCreateMeasurements`) and for a message of a client stream (`SyncStaff`, whose
//! earlier valid rows are not applied either). Memory itself is measured by
//! `qi bench hostile` (a release build), not here.

use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;
use qi::Service;
use qi_e2e::{LoneService, TestSuite};
use qi_platform::access::{ACCESS_HEADER, AccessSigner};
use qi_platform::{AccessContext, SiteScope};
use qi_proto::training as tpb;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

const BATCH: &str = "/qi.metrics.v1.MetricService/BatchCreateMeasurements";
const SYNC: &str = "/qi.training.v1.TrainingService/SyncStaff";

/// `BatchCreateMeasurements` of the shape: a parent, then `n` empty measurements.
fn empty_measurements(n: usize) -> Bytes {
    let mut bytes = qi_proto::metrics::BatchCreateMeasurementsRequest {
        parent: "sites/BAS/metrics/los".into(),
        ..Default::default()
    }
    .encode_to_vec();
    bytes.extend(std::iter::repeat_n([0x12, 0x00], n).flatten());
    Bytes::from(bytes)
}

/// A sync: a header with one valid row, then a message of `n` empty rows, then the end.
fn sync_with_empty_rows(n: usize) -> Vec<Bytes> {
    let header = tpb::SyncStaffRequest {
        extract_time: Some(prost_types::Timestamp {
            seconds: 1_790_000_000,
            nanos: 0,
        }),
        rows: vec![tpb::EsrRow {
            employee_number: "70000001".into(),
            assignment_number: "70000001".into(),
            primary_assignment: true,
            forename: "Ash".into(),
            surname: "Hale".into(),
            site: "BAS".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    // Field 4 (`rows`), length 0: an empty row in two bytes.
    let empties: Vec<u8> = std::iter::repeat_n([0x22, 0x00], n).flatten().collect();
    let end = tpb::SyncStaffRequest {
        complete: true,
        ..Default::default()
    };
    vec![
        Bytes::from(header.encode_to_vec()),
        Bytes::from(empties),
        Bytes::from(end.encode_to_vec()),
    ]
}

/// The code and the fields named by the answer to a raw call.
async fn call(
    channel: &Channel,
    header: (&'static str, MetadataValue<Ascii>),
    path: &'static str,
    messages: Vec<Bytes>,
) -> (Code, Vec<String>) {
    let mut grpc = tonic::client::Grpc::new(channel.clone())
        .max_encoding_message_size(qi_platform::server::MAX_MESSAGE_BYTES);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let result = if path.as_str() == SYNC {
        let mut req = tonic::Request::new(tokio_stream::iter(messages));
        req.metadata_mut().insert(header.0, header.1);
        req.set_timeout(Duration::from_secs(10));
        grpc.client_streaming(req, path, qi_platform::codec::BytesCodec)
            .await
            .map(|_| ())
    } else {
        let message = messages.into_iter().next().unwrap_or_default();
        let mut req = tonic::Request::new(message);
        req.metadata_mut().insert(header.0, header.1);
        req.set_timeout(Duration::from_secs(10));
        grpc.unary(req, path, qi_platform::codec::BytesCodec)
            .await
            .map(|_| ())
    };
    match result {
        Ok(()) => (Code::Ok, Vec::new()),
        Err(status) => (
            status.code(),
            status
                .get_details_bad_request()
                .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
                .unwrap_or_default(),
        ),
    }
}

fn bearer(token: &str) -> (&'static str, MetadataValue<Ascii>) {
    ("authorization", format!("Bearer {token}").parse().unwrap())
}

#[tokio::test]
async fn the_gateway_refuses_a_repeated_field_over_its_bound_naming_it_and_stores_nothing() {
    let suite = TestSuite::start().await;
    let team = suite.token("team", &["improvement_team"], &["BAS"]);
    let (code, fields) = call(
        &suite.channel,
        bearer(&team),
        BATCH,
        vec![empty_measurements(2_090_000)],
    )
    .await;
    assert_eq!(
        (code, fields),
        (Code::InvalidArgument, vec!["measurements".into()])
    );

    let hr = suite.token("esr", &["hr_sync"], &["*"]);
    let (code, fields) = call(
        &suite.channel,
        bearer(&hr),
        SYNC,
        sync_with_empty_rows(5_001),
    )
    .await;
    assert_eq!((code, fields), (Code::InvalidArgument, vec!["rows".into()]));
    assert_eq!(
        suite
            .count("SELECT count(*) FROM metrics.measurement")
            .await,
        0
    );
    assert_eq!(
        suite.count("SELECT count(*) FROM training.staff").await,
        0,
        "the valid row before the refused message was not applied"
    );
    // At the bound, the same shapes pass the gateway's count and reach the service.
    let (code, _) = call(
        &suite.channel,
        bearer(&hr),
        SYNC,
        sync_with_empty_rows(5_000),
    )
    .await;
    assert_ne!(
        code,
        Code::InvalidArgument,
        "5,000 empty rows are within the bound"
    );
    suite.stop().await.unwrap();
}

/// The access context the gateway would sign for a call of `method` by `role`.
fn context(
    service: &LoneService,
    role: &str,
    method: &str,
) -> (&'static str, MetadataValue<Ascii>) {
    let ctx = AccessContext {
        subject: "direct".into(),
        roles: vec![role.into()],
        sites: SiteScope::TrustWide,
        method: method.into(),
        employee: None,
        employee_claim: Default::default(),
        token_expiry: None,
    };
    let signer = AccessSigner::new(&service.key, Duration::from_secs(60));
    (ACCESS_HEADER, signer.sign(&ctx).unwrap().parse().unwrap())
}

#[tokio::test]
async fn a_service_refuses_a_repeated_field_over_its_bound_before_decoding_and_stores_nothing() {
    let metrics = LoneService::start(Service::Metrics).await;
    let (code, fields) = call(
        &metrics.channel,
        context(&metrics, "improvement_team", BATCH),
        BATCH,
        vec![empty_measurements(2_090_000)],
    )
    .await;
    assert_eq!(
        (code, fields),
        (Code::InvalidArgument, vec!["measurements".into()])
    );
    assert_eq!(
        metrics
            .count("SELECT count(*) FROM metrics.measurement")
            .await,
        0
    );
    metrics.stop().await.unwrap();

    let training = LoneService::start(Service::Training).await;
    let (code, fields) = call(
        &training.channel,
        context(&training, "hr_sync", SYNC),
        SYNC,
        sync_with_empty_rows(5_001),
    )
    .await;
    assert_eq!((code, fields), (Code::InvalidArgument, vec!["rows".into()]));
    assert_eq!(
        training.count("SELECT count(*) FROM training.staff").await,
        0
    );
    training.stop().await.unwrap();
}

/// Bytes that are not the method's message at all (wire type 7 does not exist) are the
/// caller's mistake: INVALID_ARGUMENT, from a service, through the gateway, and from the
/// gateway's own service, and nothing is stored.
#[tokio::test]
async fn bytes_that_are_not_a_message_are_invalid_argument_not_internal() {
    const AUDIT: &str = "/qi.gateway.v1.GatewayService/ListAuditEvents";
    let garbage = || vec![Bytes::from_static(&[0x0f, 0xff, 0xff])];
    let suite = TestSuite::start().await;
    let team = suite.token("team", &["improvement_team"], &["BAS"]);
    let (code, _) = call(&suite.channel, bearer(&team), BATCH, garbage()).await;
    assert_eq!(code, Code::InvalidArgument, "forwarded to the service");
    let admin = suite.token("auditor", &["admin"], &["*"]);
    let (code, _) = call(&suite.channel, bearer(&admin), AUDIT, garbage()).await;
    assert_eq!(code, Code::InvalidArgument, "the gateway's own service");
    assert_eq!(
        suite
            .count("SELECT count(*) FROM metrics.measurement")
            .await,
        0
    );
    suite.stop().await.unwrap();

    let metrics = LoneService::start(Service::Metrics).await;
    let (code, _) = call(
        &metrics.channel,
        context(&metrics, "improvement_team", BATCH),
        BATCH,
        garbage(),
    )
    .await;
    assert_eq!(code, Code::InvalidArgument, "straight to the service");
    metrics.stop().await.unwrap();
}
