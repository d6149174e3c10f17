//! The QI Suite's gRPC contracts (`proto/qi/**`), compiled at build time, and the encoded
//! file descriptor set that server reflection and the gateway's access policies read.
#![forbid(unsafe_code)]
#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

/// The encoded `FileDescriptorSet` of every contract and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("qi_descriptor");

#[warn(missing_docs, unreachable_pub, clippy::all)]
pub mod limits;

/// Whether the method at `path` (`/package.Service/Method`) streams requests or responses.
/// These are the bulk methods (the HR sync in, the trained-staff records out), whose calls
/// get the longer bulk deadline.
#[warn(missing_docs, clippy::all)]
pub fn is_streaming(path: &str) -> bool {
    static STREAMING: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    STREAMING
        .get_or_init(|| {
            // Compiled in by the build: decoding it cannot fail at run time if it built.
            let Ok(pool) = prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET) else {
                return Default::default();
            };
            pool.services()
                .flat_map(|s| s.methods().collect::<Vec<_>>())
                .filter(|m| m.is_client_streaming() || m.is_server_streaming())
                .map(|m| format!("/{}/{}", m.parent_service().full_name(), m.name()))
                .collect()
        })
        .contains(path)
}

/// Vendored Google types the contracts use.
pub mod google {
    /// `google.api`: field behaviour annotations.
    pub mod api {
        tonic::include_proto!("google.api");
    }
    /// `google.rpc`: status codes and error details (for the gateway's HTTP errors).
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
    /// `google.type`: calendar dates.
    pub mod r#type {
        tonic::include_proto!("google.r#type");
    }
}

/// The QI Suite's own packages.
pub mod qi {
    /// Shared types: the access policy method option.
    pub mod common {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("qi.common.v1");
        }
    }
    /// The training service: courses and cohorts.
    pub mod training {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("qi.training.v1");
        }
    }
    /// The projects service: sites, ideas and projects.
    pub mod projects {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("qi.projects.v1");
        }
    }
    /// The metrics service: metric definitions and measurements.
    pub mod metrics {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("qi.metrics.v1");
        }
    }
    /// The read model: answers that span the services.
    pub mod insights {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("qi.insights.v1");
        }
    }
    /// The gateway's own service: the audit trail.
    pub mod gateway {
        /// Version 1.
        pub mod v1 {
            tonic::include_proto!("qi.gateway.v1");
        }
    }
}

pub use qi::common::v1 as common;
pub use qi::gateway::v1 as gateway;
pub use qi::insights::v1 as insights;
pub use qi::metrics::v1 as metrics;
pub use qi::projects::v1 as projects;
pub use qi::training::v1 as training;
