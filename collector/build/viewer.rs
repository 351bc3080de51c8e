//! Embeds the viewer (`ui/`) into the binary: every file becomes an entry of a static table, with a gzip
//! copy when that is smaller, and the whole set gets a content version so the assets can be cached forever
//! under `/ui/{version}/` while the page shell revalidates. Adding a file to `ui/` needs no code change.
// A build script that cannot read or write its files should stop the build with the reason.
#![allow(clippy::expect_used)]

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes `$OUT_DIR/ui_assets.rs` (included by `src/query/ui.rs`).
pub fn embed() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let ui = manifest.join("ui");
    println!("cargo:rerun-if-changed=ui");

    let mut files = Vec::new();
    collect(&ui, &ui, &mut files);
    files.sort();

    // FNV-1a over every path and content: the version changes whenever any asset does.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut fnv = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    let mut contents = Vec::new();
    for rel in &files {
        let bytes = fs::read(ui.join(rel)).expect("read ui asset");
        fnv(rel.as_bytes());
        fnv(&bytes);
        contents.push(bytes);
    }
    let version = format!("{:012x}", hash & 0xffff_ffff_ffff);

    let gz_dir = out.join("ui-gz");
    // Start empty: files removed from ui/ must not linger from an earlier build.
    let _ = fs::remove_dir_all(&gz_dir);
    fs::create_dir_all(&gz_dir).expect("create ui-gz");
    let mut table = String::new();
    writeln!(table, "pub const VERSION: &str = {version:?};").ok();
    writeln!(table, "pub static ASSETS: &[Asset] = &[").ok();
    for (rel, bytes) in files.iter().zip(contents) {
        // The shell names the versioned asset folder; it is the only file rewritten.
        let bytes = if rel == "index.html" {
            String::from_utf8(bytes)
                .expect("index.html is UTF-8")
                .replace("{{ASSETS}}", &format!("/ui/{version}"))
                .into_bytes()
        } else {
            bytes
        };
        let raw_path = gz_dir.join(format!("{}.raw", rel.replace('/', "__")));
        fs::write(&raw_path, &bytes).expect("write raw asset");
        let gz = gzip(&bytes);
        let gz_expr = if gz.len() + 64 < bytes.len() {
            let gz_path = gz_dir.join(format!("{}.gz", rel.replace('/', "__")));
            fs::write(&gz_path, &gz).expect("write gz asset");
            format!("Some(include_bytes!({:?}))", gz_path.display().to_string())
        } else {
            "None".to_string()
        };
        writeln!(
            table,
            "    Asset {{ path: {rel:?}, content_type: {:?}, raw: include_bytes!({:?}), gzip: {gz_expr} }},",
            content_type(rel),
            raw_path.display().to_string(),
        )
        .ok();
    }
    writeln!(table, "];").ok();
    fs::write(out.join("ui_assets.rs"), table).expect("write ui_assets.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_string_lossy().replace('\\', "/");
            if !rel.starts_with('.') && !rel.contains("/.") {
                files.push(rel);
            }
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).expect("gzip in memory");
    enc.finish().expect("gzip in memory")
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
