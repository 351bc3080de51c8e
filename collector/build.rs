//! Two build steps: the Jaeger api_v2 and Zipkin protobuf definitions in `proto/` compiled with protox, a
//! protobuf compiler in pure Rust, so a fresh machine needs no `protoc`; and the viewer (`ui/`) embedded
//! into the binary (`build/viewer.rs`).

#[path = "build/viewer.rs"]
mod viewer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    compile_protos()?;
    viewer::embed();
    Ok(())
}

fn compile_protos() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/jaeger/api_v2/collector.proto",
        "proto/zipkin/zipkin.proto",
    ];
    let includes = ["proto/jaeger/api_v2", "proto/zipkin"];
    let descriptors = protox::compile(files, includes)?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
