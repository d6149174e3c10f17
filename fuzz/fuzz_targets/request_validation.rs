//! Arbitrary bytes as the request of a create RPC, put through the service's checks: they
//! must answer `Ok` or a client error naming fields, never panic, and the error must map to
//! a status (as the server would send it) without panicking either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tonic::Code;

/// Every method with a pure check, by service.
const METHODS: &[(
    &str,
    fn(&str, &[u8]) -> Option<Result<(), qi_platform::Error>>,
)] = &[
    ("CreateCohort", qi_training::validate_request),
    ("PlanCohorts", qi_training::validate_request),
    ("CreateCourse", qi_training::validate_request),
    ("CreateProject", qi_projects::validate_request),
    ("CreateMetric", qi_metrics::validate_request),
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the method; the rest is the encoded request.
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (method, validate) = METHODS[usize::from(pick) % METHODS.len()];
    let Some(outcome) = validate(method, body) else {
        panic!("{method} has no pure check");
    };
    if let Err(e) = outcome {
        let status = tonic::Status::from(e);
        assert!(
            matches!(
                status.code(),
                Code::InvalidArgument | Code::FailedPrecondition | Code::NotFound
            ),
            "{method}: {status:?}"
        );
    }
});
