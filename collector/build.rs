//! Compiles the Jaeger api_v2 and Zipkin protobuf definitions in `proto/` with protox, a protobuf compiler
//! in pure Rust, so a fresh machine needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
