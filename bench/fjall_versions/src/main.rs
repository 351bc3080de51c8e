//! The collector store's write pattern into fjall 2.11.2 and fjall 3.1.13, CPU per part counted until
//! background flushes and compactions settle (collector/DESIGN.md, "Chunks"). Usage:
//!   fjall-versions <v2|v3> <data_dir> [batches=60000] [parts_per_batch=50]
//!   fjall-versions ratio      (prints LZ4 ratio of the generated part values)
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

// ---------- tiny PRNG (splitmix64) ----------
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SERVICES: [&str; 10] = [
    "frontend",
    "checkout",
    "cart",
    "payment",
    "shipping",
    "email",
    "currency",
    "ad",
    "recommendation",
    "productcatalog",
];

// protobuf-like: tag byte, varint len, bytes
fn pb_str(out: &mut Vec<u8>, tag: u8, s: &[u8]) {
    out.push(tag);
    let mut l = s.len();
    while l >= 0x80 {
        out.push((l as u8) | 0x80);
        l >>= 7;
    }
    out.push(l as u8);
    out.extend_from_slice(s);
}

fn make_part_value(rng: &mut Rng, svc: usize, ts: u64, trace: &[u8; 16]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1200);
    pb_str(&mut v, 0x0a, trace);
    let mut id = [0u8; 8];
    rng.fill(&mut id);
    pb_str(&mut v, 0x12, &id); // span id
    rng.fill(&mut id);
    pb_str(&mut v, 0x1a, &id); // parent span id
    pb_str(&mut v, 0x22, SERVICES[svc].as_bytes());
    v.push(0x29);
    v.extend_from_slice(&ts.to_le_bytes());
    v.push(0x31);
    v.extend_from_slice(&(ts + rng.below(50_000)).to_le_bytes());
    let n = rng.below(100);
    let port = 8080 + rng.below(4);
    let attrs: [(&str, String); 14] = [
        (
            "http.method",
            ["GET", "POST", "PUT"][rng.below(3) as usize].to_string(),
        ),
        (
            "http.url",
            format!(
                "http://svc-{n}.default.svc.cluster.local:{port}/api/v1/items/{}",
                rng.below(1000)
            ),
        ),
        (
            "http.status_code",
            ["200", "200", "200", "404", "503"][rng.below(5) as usize].to_string(),
        ),
        ("http.protocol", "HTTP/1.1".to_string()),
        (
            "user_agent",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)".to_string(),
        ),
        (
            "upstream_cluster",
            format!("outbound|{port}||svc-{n}.default.svc.cluster.local"),
        ),
        (
            "upstream_cluster.name",
            format!("outbound|{port}||svc-{n}.default.svc.cluster.local"),
        ),
        (
            "node_id",
            format!(
                "sidecar~10.1.{}.{}~{}-7d9f8b6c5-x2k4p.default~default.svc.cluster.local",
                rng.below(256),
                rng.below(256),
                SERVICES[svc]
            ),
        ),
        ("zone", "us-east-1a".to_string()),
        (
            "guid:x-request-id",
            format!("{:016x}-{:08x}", rng.next(), rng.next() as u32),
        ),
        ("istio.canonical_service", SERVICES[svc].to_string()),
        ("istio.mesh_id", "cluster.local".to_string()),
        ("istio.namespace", "default".to_string()),
        ("response_flags", "-".to_string()),
    ];
    for (k, val) in attrs.iter() {
        let mut kv = Vec::with_capacity(k.len() + val.len() + 4);
        pb_str(&mut kv, 0x0a, k.as_bytes());
        pb_str(&mut kv, 0x12, val.as_bytes());
        pb_str(&mut v, 0x42, &kv);
    }
    // a few more random ids (links / events)
    for _ in 0..3 {
        let mut x = [0u8; 16];
        rng.fill(&mut x);
        pb_str(&mut v, 0x4a, &x);
    }
    // pad with repeated resource attributes to ~1100 bytes
    let pad = b"service.version\x121.4.2-rc1\x0atelemetry.sdk.language\x12go\x0atelemetry.sdk.name\x12opentelemetry\x0ak8s.pod.name\x12";
    while v.len() < 1080 {
        let take = (1100 - v.len()).min(pad.len());
        v.extend_from_slice(&pad[..take]);
    }
    v
}

fn make_search_value(rng: &mut Rng, ts: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(96);
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&(rng.below(1_000_000)).to_le_bytes());
    for _ in 0..20 {
        v.extend_from_slice(&(rng.next() as u32).to_le_bytes());
    }
    v // 8 + 8 + 80 = 96 bytes
}

struct Entry {
    part_key: Vec<u8>,
    part_val: Vec<u8>,
    search_key: Vec<u8>,
    search_val: Vec<u8>,
}

fn gen_batch(rng: &mut Rng, ts: &mut u64, n: usize) -> Vec<Entry> {
    (0..n)
        .map(|_| {
            *ts += 1 + rng.below(40);
            let mut trace = [0u8; 16];
            rng.fill(&mut trace);
            let mut hash = [0u8; 8];
            rng.fill(&mut hash);
            let svc = rng.below(10) as usize;
            let mut part_key = Vec::with_capacity(24);
            part_key.extend_from_slice(&trace);
            part_key.extend_from_slice(&hash);
            let name = SERVICES[svc].as_bytes();
            let mut search_key = Vec::with_capacity(2 + name.len() + 32);
            search_key.extend_from_slice(&(name.len() as u16).to_be_bytes());
            search_key.extend_from_slice(name);
            search_key.extend_from_slice(&ts.to_be_bytes());
            search_key.extend_from_slice(&trace);
            search_key.extend_from_slice(&hash);
            Entry {
                part_val: make_part_value(rng, svc, *ts, &trace),
                part_key,
                search_val: make_search_value(rng, *ts),
                search_key,
            }
        })
        .collect()
}

// ---------- /proc accounting ----------
fn clk_tck() -> f64 {
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

fn proc_cpu_secs() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn proc_io() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|x| x.parse().ok())
            .unwrap_or(0)
    };
    (get("wchar:"), get("write_bytes:"))
}

/// tid -> (comm, cpu ticks)
fn thread_ticks() -> BTreeMap<u64, (String, u64)> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc/self/task") {
        for e in rd.flatten() {
            let tid: u64 = match e.file_name().to_string_lossy().parse() {
                Ok(t) => t,
                Err(_) => continue,
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // comm is inside parens; fields after ')' start at field 3
            let (Some(l), Some(r)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let comm = stat[l + 1..r].to_string();
            let rest: Vec<&str> = stat[r + 2..].split_whitespace().collect();
            let ut: u64 = rest.get(11).and_then(|x| x.parse().ok()).unwrap_or(0);
            let st: u64 = rest.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
            m.insert(tid, (comm, ut + st));
        }
    }
    m
}

fn dir_size(p: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut files = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                let (b, f) = dir_size(&e.path());
                bytes += b;
                files += f;
            } else {
                bytes += md.len();
                files += 1;
            }
        }
    }
    (bytes, files)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------- engines ----------
/// Optional override: MEMTABLE_MB=16 sets max_memtable_size on both partitions/keyspaces
/// (defaults differ: fjall 2 = 16 MiB, fjall 3 = 64 MiB).
fn memtable_mb() -> Option<u64> {
    std::env::var("MEMTABLE_MB")
        .ok()
        .and_then(|s| s.parse().ok())
}

trait Engine {
    fn write_batch(&self, entries: &[Entry]);
}

struct V2 {
    ks: fjall2::Keyspace,
    parts: fjall2::PartitionHandle,
    search: fjall2::PartitionHandle,
}
impl V2 {
    fn open(dir: &Path) -> Self {
        use fjall2::{CompressionType, Config, PartitionCreateOptions};
        let ks = Config::new(dir).open().unwrap();
        let mut po = PartitionCreateOptions::default()
            .block_size(16 * 1024)
            .compression(CompressionType::Lz4);
        let mut so = PartitionCreateOptions::default();
        if let Some(mb) = memtable_mb() {
            po = po.max_memtable_size(mb as u32 * 1024 * 1024);
            so = so.max_memtable_size(mb as u32 * 1024 * 1024);
        }
        let parts = ks.open_partition("parts", po).unwrap();
        let search = ks.open_partition("search", so).unwrap();
        V2 { ks, parts, search }
    }
}
impl Engine for V2 {
    fn write_batch(&self, entries: &[Entry]) {
        let mut b = self
            .ks
            .batch()
            .durability(Some(fjall2::PersistMode::SyncAll));
        for e in entries {
            b.insert(&self.parts, e.part_key.as_slice(), e.part_val.as_slice());
            b.insert(
                &self.search,
                e.search_key.as_slice(),
                e.search_val.as_slice(),
            );
        }
        b.commit().unwrap();
    }
}

struct V3 {
    db: fjall3::Database,
    parts: fjall3::Keyspace,
    search: fjall3::Keyspace,
}
impl V3 {
    fn open(dir: &Path) -> Self {
        use fjall3::config::{BlockSizePolicy, CompressionPolicy};
        use fjall3::{CompressionType, Database, KeyspaceCreateOptions};
        let mut b = Database::builder(dir);
        // Optional override: V3_WORKERS=N sets fjall 3 worker_threads (default = min(cores, 4))
        if let Some(n) = std::env::var("V3_WORKERS")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            b = b.worker_threads(n);
        }
        let db = b.open().unwrap();
        let mt = |o: KeyspaceCreateOptions| match memtable_mb() {
            Some(mb) => o.max_memtable_size(mb * 1024 * 1024),
            None => o,
        };
        let parts = db
            .keyspace("parts", || {
                mt(KeyspaceCreateOptions::default()
                    .data_block_size_policy(BlockSizePolicy::all(16 * 1024))
                    .data_block_compression_policy(CompressionPolicy::all(CompressionType::Lz4)))
            })
            .unwrap();
        let search = db
            .keyspace("search", || mt(KeyspaceCreateOptions::default()))
            .unwrap();
        V3 { db, parts, search }
    }
}
impl Engine for V3 {
    fn write_batch(&self, entries: &[Entry]) {
        let mut b = self
            .db
            .batch()
            .durability(Some(fjall3::PersistMode::SyncAll));
        for e in entries {
            b.insert(&self.parts, e.part_key.as_slice(), e.part_val.as_slice());
            b.insert(
                &self.search,
                e.search_key.as_slice(),
                e.search_val.as_slice(),
            );
        }
        b.commit().unwrap();
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("ratio") {
        let mut rng = Rng(42);
        let mut ts = 1_700_000_000_000_000;
        let batch = gen_batch(&mut rng, &mut ts, 2000);
        let raw: Vec<u8> = batch.iter().flat_map(|e| e.part_val.clone()).collect();
        let c = lz4_flex::block::compress(&raw[..16384]);
        let avg = raw.len() / batch.len();
        let savg = batch.iter().map(|e| e.search_val.len()).sum::<usize>() / batch.len();
        println!("part value avg {avg} B, search value avg {savg} B, LZ4 ratio on a 16 KiB block: {:.2}x", 16384.0 / c.len() as f64);
        return;
    }
    let ver = args.get(1).expect("v2|v3").clone();
    let dir = std::path::PathBuf::from(args.get(2).expect("data dir"));
    let batches: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(60_000);
    let per: usize = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(50);
    let _ = std::fs::remove_dir_all(&dir);

    // sampler thread: remember the last seen ticks of every thread (threads may exit)
    let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<u64, (String, u64)>::new()));
    {
        let seen = seen.clone();
        std::thread::Builder::new()
            .name("spike-sampler".into())
            .spawn(move || loop {
                let t = thread_ticks();
                seen.lock().unwrap().extend(t);
                std::thread::sleep(Duration::from_millis(250));
            })
            .unwrap();
    }

    let load0 = loadavg();
    let cpu0 = proc_cpu_secs();
    let (wchar0, wb0) = proc_io();
    let engine: Box<dyn Engine> = match ver.as_str() {
        "v2" => Box::new(V2::open(&dir)),
        "v3" => Box::new(V3::open(&dir)),
        _ => panic!("v2|v3"),
    };
    let mut rng = Rng(0x5eed);
    let mut ts: u64 = 1_700_000_000_000_000;
    // pre-generate data outside the timed region would need ~3.5 GB; instead generate per batch
    // and measure generation CPU separately on the main thread (subtracted below).
    let mut gen_cpu = 0.0f64;
    let thread_cpu = || {
        let mut t: libc::timespec = unsafe { std::mem::zeroed() };
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 / 1e9
    };
    let t0 = Instant::now();
    for i in 0..batches {
        let g0 = thread_cpu();
        let b = gen_batch(&mut rng, &mut ts, per);
        gen_cpu += thread_cpu() - g0;
        engine.write_batch(&b);
        if i % 10_000 == 9_999 {
            eprintln!(
                "  {ver}: {} batches, {:.1}s, cpu {:.1}s",
                i + 1,
                t0.elapsed().as_secs_f64(),
                proc_cpu_secs() - cpu0
            );
        }
    }
    let write_wall = t0.elapsed().as_secs_f64();
    let cpu_write = proc_cpu_secs() - cpu0;

    // settle: wait until process CPU grows < 30 ms over 3 s (sampler itself uses ~ few ms)
    let mut last = proc_cpu_secs();
    let mut last_t = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = proc_cpu_secs();
        if last_t.elapsed() >= Duration::from_secs(3) {
            if now - last < 0.03 {
                break;
            }
            last = now;
            last_t = Instant::now();
        }
    }
    let settle_wall = t0.elapsed().as_secs_f64() - write_wall;
    let cpu_total = proc_cpu_secs() - cpu0;
    let (wchar1, wb1) = proc_io();
    let (disk, files) = dir_size(&dir);
    seen.lock().unwrap().extend(thread_ticks());
    let parts = (batches * per) as f64;
    let tck = clk_tck();

    let mut by_name: BTreeMap<String, f64> = BTreeMap::new();
    for (_, (comm, ticks)) in seen.lock().unwrap().iter() {
        *by_name.entry(comm.clone()).or_default() += *ticks as f64 / tck;
    }
    let threads: Vec<String> = by_name
        .iter()
        .filter(|(_, s)| **s >= 0.05)
        .map(|(n, s)| format!("{n}={s:.1}s"))
        .collect();
    println!(
        "RESULT ver={ver} memtable_mb={:?} parts={parts} write_wall_s={write_wall:.1} settle_wall_s={settle_wall:.1} cpu_write_s={cpu_write:.1} cpu_total_s={cpu_total:.1} gen_cpu_s={gen_cpu:.1} \
cpu_us_per_part_excl_gen={:.1} write_bytes_per_part={:.0} wchar_per_part={:.0} disk_MB={:.1} files={files} load_start=[{load0}] load_end=[{}]",
        memtable_mb(),
        (cpu_total - gen_cpu) / parts * 1e6,
        (wb1 - wb0) as f64 / parts,
        (wchar1 - wchar0) as f64 / parts,
        disk as f64 / 1e6,
        loadavg()
    );
    println!(
        "THREADS ver={ver} memtable_mb={:?} v3_workers={:?} {}",
        memtable_mb(),
        std::env::var("V3_WORKERS").ok(),
        threads.join(" ")
    );
    drop(engine);
}
