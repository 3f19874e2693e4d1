//! Compiles the Feast-compatible `.proto` files under `proto/` into Rust
//! message types with the pure-Rust `protox` compiler (no `protoc` needed) and
//! prost (via `tonic-prost-build`), with tonic clients and servers for the
//! gRPC services.
//!
//! It also writes the encoded `FileDescriptorSet` (with imports and source
//! info) to `$OUT_DIR/larder_descriptor.bin`, exposed as
//! `larder_protos::FILE_DESCRIPTOR_SET` for reflection.

use std::io;
use std::path::{Path, PathBuf};

use prost::Message as _;

const PROTO_ROOT: &str = "proto";
const DESCRIPTOR_FILE: &str = "larder_descriptor.bin";

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    println!("cargo:rerun-if-changed=build.rs");

    let mut files = Vec::new();
    collect_protos(Path::new(PROTO_ROOT), &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(format!("no .proto files found under {PROTO_ROOT}/").into());
    }

    let fds = protox::compile(&files, [PROTO_ROOT])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join(DESCRIPTOR_FILE), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        // Ordered maps: deterministic bytes and stable diffs.
        .btree_map(".")
        .compile_fds(fds)?;

    Ok(())
}
