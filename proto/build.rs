//! Compiles the contracts with the vendored `protoc` (no protoc install needed) and keeps
//! the encoded descriptor set, which reflection and the gateway's access policies read.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut files = Vec::new();
    collect_protos(&root.join("qi"), &mut files)?;
    // google.rpc's status and error details: the gateway renders errors' details as JSON
    // from the descriptor set, so their types must be in it though no contract imports them.
    collect_protos(&root.join("google/rpc"), &mut files)?;
    files.sort();
    // tonic-prost-build emits no rerun-if-changed of its own: name every input.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=google");
    println!("cargo:rerun-if-changed=qi");
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // `prost::Name` on every message: the codec finds a request's bounds by its type.
    config.enable_type_names();
    let wkt = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("qi_descriptor.bin"))
        // Counts a request's repeated fields against their bounds before decoding it.
        .codec_path("crate::limits::BoundedCodec")
        .compile_with_config(config, &files, &[root.clone(), wkt])?;
    Ok(())
}

fn collect_protos(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            files.push(path);
        }
    }
    Ok(())
}
