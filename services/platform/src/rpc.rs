//! The thin gRPC layer every service shares: [`call`] runs one handler, and
//! [`grpc_service!`](crate::grpc_service) writes a service's whole tonic trait impl from a
//! table of RPC → handler, so no service hand-writes a delegation shim.
//!
//! A handler is a plain async function of the service, the caller's access context and the
//! decoded request, returning the response or the one [`Error`] type:
//!
//! ```ignore
//! pub(crate) async fn create(api: &TrainingApi, ctx: AccessContext, req: pb::CreateCourseRequest)
//!     -> Result<pb::CreateCourseResponse, Error>
//! ```

use std::pin::Pin;

use crate::access::AccessContext;
use crate::deadline;
use crate::error::Error;

/// The response stream of a server-streaming RPC.
pub type ResponseStream<T> =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<T, tonic::Status>> + Send + 'static>>;

/// Runs one RPC: hands the handler the caller's access context (put there by the
/// [`crate::access::AccessLayer`]) and the message, runs it [`deadline::within`] the call's
/// deadline, and maps its error in the one place errors map.
pub async fn call<T, R, F>(
    req: tonic::Request<T>,
    handler: impl FnOnce(AccessContext, T) -> F,
) -> Result<tonic::Response<R>, tonic::Status>
where
    F: Future<Output = Result<R, Error>>,
{
    let ctx = AccessContext::of(&req)?.clone();
    // The handler's database work is bounded by the call's deadline (`db::begin`).
    let deadline = req.extensions().get::<deadline::CallDeadline>().copied();
    deadline::within(deadline, handler(ctx, req.into_inner()))
        .await
        .map(tonic::Response::new)
        .map_err(tonic::Status::from)
}

/// Implements a generated tonic service trait from a table of its RPCs, each line
/// `method(Request) -> Response = handler;`, every method through [`call`]. A client stream's
/// request is `tonic::Streaming<Message>`; a server stream names its response type in
/// `streams { AssocType = Message; }` and returns `Self::AssocType` (a [`ResponseStream`]).
///
/// ```ignore
/// qi_platform::grpc_service! {
///     impl TrainingService for TrainingApi {
///         streams { StreamTrainingRecordsStream = pb::StreamTrainingRecordsResponse; }
///         create_course(pb::CreateCourseRequest) -> pb::CreateCourseResponse = courses::create;
///         stream_training_records(pb::StreamTrainingRecordsRequest)
///             -> Self::StreamTrainingRecordsStream = register::stream;
///     }
/// }
/// ```
#[macro_export]
macro_rules! grpc_service {
    (
        impl $($service:ident)::+ for $api:ty {
            $( streams { $( $stream:ident = $item:ty; )* } )?
            $( $method:ident ( $req:ty ) -> $resp:ty = $handler:path; )*
        }
    ) => {
        #[tonic::async_trait]
        impl $($service)::+ for $api {
            $( $( type $stream = $crate::rpc::ResponseStream<$item>; )* )?
            $(
                async fn $method(
                    &self,
                    req: tonic::Request<$req>,
                ) -> ::std::result::Result<tonic::Response<$resp>, tonic::Status> {
                    $crate::rpc::call(req, |ctx, r| $handler(self, ctx, r)).await
                }
            )*
        }
    };
}
