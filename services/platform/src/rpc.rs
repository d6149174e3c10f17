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
    // Two rules, because `streams` is also an identifier: one optional block before the
    // method lines would be ambiguous to the macro parser ("local ambiguity").
    (
        impl $($service:ident)::+ for $api:ty {
            streams { $( $stream:ident = $item:ty; )* }
            $( $method:ident ( $req:ty ) -> $resp:ty = $handler:path; )*
        }
    ) => {
        #[tonic::async_trait]
        impl $($service)::+ for $api {
            $( type $stream = $crate::rpc::ResponseStream<$item>; )*
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
    (
        impl $($service:ident)::+ for $api:ty {
            $( $method:ident ( $req:ty ) -> $resp:ty = $handler:path; )*
        }
    ) => {
        $crate::grpc_service! {
            impl $($service)::+ for $api {
                streams {}
                $( $method ( $req ) -> $resp = $handler; )*
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt as _;

    use super::ResponseStream;
    use crate::access::{AccessContext, SiteScope};
    use crate::error::Error;

    /// The shapes of a generated tonic trait: one without a server stream, one with.
    #[tonic::async_trait]
    trait Unary: Send + Sync + 'static {
        async fn echo(
            &self,
            req: tonic::Request<String>,
        ) -> Result<tonic::Response<String>, tonic::Status>;
    }

    #[tonic::async_trait]
    trait Streaming: Send + Sync + 'static {
        type EchoesStream;
        async fn echoes(
            &self,
            req: tonic::Request<String>,
        ) -> Result<tonic::Response<Self::EchoesStream>, tonic::Status>;
    }

    struct Api;

    async fn echo(_: &Api, ctx: AccessContext, req: String) -> Result<String, Error> {
        Ok(format!("{} {req}", ctx.subject))
    }

    async fn echoes(
        _: &Api,
        ctx: AccessContext,
        req: String,
    ) -> Result<ResponseStream<String>, Error> {
        Ok(Box::pin(tokio_stream::iter([Ok(ctx.subject), Ok(req)])))
    }

    crate::grpc_service! {
        impl Unary for Api {
            echo(String) -> String = echo;
        }
    }

    crate::grpc_service! {
        impl Streaming for Api {
            streams { EchoesStream = String; }
            echoes(String) -> Self::EchoesStream = echoes;
        }
    }

    fn request() -> tonic::Request<String> {
        let mut req = tonic::Request::new("hello".to_owned());
        req.extensions_mut().insert(AccessContext {
            subject: "nurse".into(),
            roles: vec![],
            sites: SiteScope::from_claim(&["BAS".to_owned()]).unwrap(),
            method: "/x".into(),
            employee: None,
            employee_claim: Default::default(),
            token_expiry: None,
        });
        req
    }

    #[tokio::test]
    async fn a_table_with_or_without_streams_runs_each_handler_with_the_callers_context() {
        let reply = Unary::echo(&Api, request()).await.unwrap();
        assert_eq!(reply.into_inner(), "nurse hello");
        let stream = Streaming::echoes(&Api, request())
            .await
            .unwrap()
            .into_inner();
        let items: Vec<_> = stream.map(Result::unwrap).collect().await;
        assert_eq!(items, ["nurse", "hello"]);
        let missing = Unary::echo(&Api, tonic::Request::new(String::new())).await;
        assert_eq!(missing.unwrap_err().code(), tonic::Code::Unauthenticated);
    }
}
