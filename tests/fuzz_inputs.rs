//! Property-based fuzzing on stable Rust (proptest) of every reader of untrusted bytes: the image
//! decode path (both decode modes, and decode → preprocess → encode with the raw-pixels
//! encoder), the feature-cache reader (`features.npy`, `index.csv`, `meta.json`,
//! `skipped.csv`), the resume journal, the cut-set manifest and the saved-head loader.
//!
//! Inputs are real files, mutated (bit flips, overwritten bytes, cuts, insertions, copied
//! chunks, "interesting" values at random offsets) or replaced by random bytes: images
//! generated here and, in the ignored variant, the smoke photos of `make data`; a cache and a
//! journal written by the real extraction and journal writer; the committed head files of
//! `crates/tlearn-heads/tests/fixtures`, also mutated field by field as JSON.
//!
//! The property: no panic, `Ok` or a typed error, and no single allocation larger than a bound
//! set by the input's length (a global allocator below records the largest request of the
//! thread running a case). Cases: proptest's default of 256 per property; `PROPTEST_CASES=N`
//! runs more (`make fuzz` runs 20,000).

mod common;
use common::picture;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use proptest::prelude::*;
use tlearn_cache::journal::{self, JournalWriter};
use tlearn_cache::{FeatureCache, Fingerprint};
use tlearn_extract::augment::Augment;
use tlearn_extract::decode::{self, DecodeError};
use tlearn_extract::pixels::Pixels;
use tlearn_extract::spec::DecodeMode;

// ---------------------------------------------------------------- allocation guard

/// Forwards to the system allocator, noting the largest single request of each thread.
struct Recording;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// Requests above this are refused outright (the process then aborts, naming the size):
/// nothing here may need a gigabyte.
const HARD_CAP: usize = 1 << 30;

fn note(size: usize) -> bool {
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
    size <= HARD_CAP
}

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if !note(l.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if !note(l.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if !note(new) {
            return std::ptr::null_mut();
        }
        System.realloc(p, l, new)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

#[global_allocator]
static ALLOC: Recording = Recording;

/// `f()` and the largest single allocation this thread made while running it.
fn largest_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|c| c.set(0));
    let r = f();
    (r, LARGEST.with(|c| c.get()))
}

// ---------------------------------------------------------------- mutations

/// One edit of a file's bytes; offsets are taken modulo the length.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Interesting(usize, usize),
    Cut(usize),
    Insert(usize, Vec<u8>),
    CopyChunk(usize, usize, usize),
}

/// Values that often sit on a parser's edge, written little- and big-endian.
const INTERESTING: [&[u8]; 10] = [
    &[0],
    &[0xff],
    &[0x7f],
    &[0x80],
    &[0xff, 0xff],
    &[0, 0],
    &[0xff, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0x7f],
    &[0, 0, 0, 0x80],
    &[0x10, 0x27, 0, 0],
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        3 => (any::<usize>(), any::<u8>()).prop_map(|(i, v)| Edit::Set(i, v)),
        2 => (any::<usize>(), 0..INTERESTING.len()).prop_map(|(i, k)| Edit::Interesting(i, k)),
        1 => any::<usize>().prop_map(Edit::Cut),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => (any::<usize>(), any::<usize>(), 1usize..256)
            .prop_map(|(a, b, n)| Edit::CopyChunk(a, b, n)),
    ]
}

fn apply(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for e in edits {
        let n = b.len().max(1);
        match e {
            Edit::Flip(i, bit) if !b.is_empty() => b[i % n] ^= 1 << bit,
            Edit::Set(i, v) if !b.is_empty() => b[i % n] = *v,
            Edit::Interesting(i, k) if !b.is_empty() => {
                let at = i % n;
                for (j, v) in INTERESTING[*k].iter().enumerate() {
                    if at + j < b.len() {
                        b[at + j] = *v;
                    }
                }
            }
            Edit::Cut(i) => b.truncate(i % (b.len() + 1)),
            Edit::Insert(i, ins) => {
                let at = i % (b.len() + 1);
                b.splice(at..at, ins.iter().copied());
            }
            Edit::CopyChunk(from, to, len) if !b.is_empty() => {
                let from = from % n;
                let chunk: Vec<u8> = b[from..(from + len).min(b.len())].to_vec();
                let to = to % n;
                let end = (to + chunk.len()).min(b.len());
                b[to..end].copy_from_slice(&chunk[..end - to]);
            }
            _ => {}
        }
    }
    b
}

/// A mutated copy of one of `seeds`, or random bytes.
fn input(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        6 => (0..n, prop::collection::vec(edit(), 1..8))
            .prop_map(move |(k, edits)| apply(&seeds[k], &edits)),
        1 => prop::collection::vec(any::<u8>(), 0..2048),
    ]
}

// ---------------------------------------------------------------- images

fn encode(img: &DynamicImage, fmt: ImageFormat) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, fmt).unwrap();
    buf.into_inner()
}

/// Real encodings of generated pictures in every format the decoder reads. The JPEG is large
/// enough for the reduced-size decode to scale it (short side 192 ≥ 2 × 48).
fn generated_images() -> Vec<Vec<u8>> {
    let rgb = DynamicImage::ImageRgb8(picture(256, 192, 1));
    let small = DynamicImage::ImageRgb8(picture(40, 30, 2));
    let rgba = DynamicImage::ImageRgba8(RgbaImage::from_fn(24, 16, |x, y| {
        Rgba([x as u8 * 10, y as u8 * 15, 90, (x * y) as u8])
    }));
    vec![
        encode(&rgb, ImageFormat::Jpeg),
        encode(&small, ImageFormat::Jpeg),
        encode(&small, ImageFormat::Png),
        encode(&rgba, ImageFormat::Png),
        encode(&small, ImageFormat::Bmp),
        encode(&small, ImageFormat::Tiff),
        encode(&small, ImageFormat::WebP),
        encode(&rgba, ImageFormat::Gif),
    ]
}

/// The smoke photos of `make data` (real JPEGs and PNGs), re-encoded no smaller than needed:
/// every second JPEG and PNG, each cut to its first 48 KB plus the whole smallest photo, so
/// that a case stays fast while the seeds keep real camera headers, EXIF, Huffman tables.
fn smoke_photos() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/smoke");
    assert!(
        root.join("MANIFEST.json").exists(),
        "{} is missing: run `make data DATASETS=smoke` (make test does)",
        root.display()
    );
    let mut files: Vec<PathBuf> = ["darknet", "skimage"]
        .iter()
        .flat_map(|c| std::fs::read_dir(root.join(c)).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let photos: Vec<Vec<u8>> = files.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(photos.len() >= 10, "smoke set has {} photos", photos.len());
    photos
}

/// Decode `bytes` in both modes: no panic, a typed error or an image within the limits, and
/// no allocation beyond the decoder's own limit.
fn check_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    for mode in [DecodeMode::Full, DecodeMode::Reduced] {
        let (r, largest) =
            largest_alloc(|| decode::decode_rgb_for(bytes, [255, 255, 255], mode, 48));
        match r {
            Ok(img) => {
                let (w, h) = img.dimensions();
                prop_assert!(w >= 1 && h >= 1 && w <= decode::MAX_SIDE && h <= decode::MAX_SIDE);
            }
            Err(
                DecodeError::Empty
                | DecodeError::NotAnImage
                | DecodeError::TooLarge(_)
                | DecodeError::Corrupt(_)
                | DecodeError::Truncated(_),
            ) => {}
        }
        prop_assert!(
            largest as u64 <= decode::MAX_ALLOC + (64 << 20),
            "{mode:?}: one allocation of {largest} bytes for a {}-byte file",
            bytes.len()
        );
    }
    // The whole path of a file in `extract`/`predict`: decode, resize, crop, encode.
    let pixels = Pixels::new(8, false);
    let budget = tlearn_extract::budget::MemoryBudget::new(1 << 30);
    match tlearn_extract::views::encode_bytes(&pixels, bytes, Augment::Crops10, &budget) {
        Ok(v) => prop_assert_eq!(v.vector.len(), 192),
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

proptest! {
    #[test]
    fn decoding_mutated_images_never_panics(bytes in input(generated_images())) {
        check_decode(&bytes)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]
    #[test]
    #[ignore = "needs the smoke photos of make data; run by make test and make fuzz"]
    fn decoding_mutated_smoke_photos_never_panics(bytes in input(smoke_photos())) {
        check_decode(&bytes)?;
    }
}

/// `default` cases, or `PROPTEST_CASES` when set (for the slow properties, which otherwise take
/// fewer than proptest's default 256).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------- the feature cache

/// A real cache written by `tlearn_extract::extract` (raw pixels, 4×4 RGB: 48 floats a row)
/// from generated photos in two classes, and a real journal of the same vectors.
struct CacheSeed {
    _tmp: tempfile::TempDir,
    files: Vec<(&'static str, Vec<u8>)>,
    fingerprint: Fingerprint,
    journal: Vec<u8>,
}

fn cache_seed() -> CacheSeed {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for i in 0..6u32 {
        let class = ["cat", "dog"][i as usize % 2];
        let p = data.join(class).join(format!("{i}.png"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        picture(20 + i, 16, i).save(&p).unwrap();
    }
    std::fs::write(data.join("cat/broken.jpg"), b"not a jpeg").unwrap();
    let out = tmp.path().join("cache");
    let enc = Pixels::new(4, false);
    let mut opts = tlearn_extract::extract::Options::new(&data, &out);
    opts.progress = false;
    tlearn_extract::extract::extract(&enc, &opts).unwrap();
    let cache = FeatureCache::load(&out).unwrap();
    assert_eq!((cache.rows(), cache.meta.dim), (6, 48));
    let fingerprint = cache.meta.extractor.clone();
    let jdir = tmp.path().join("journal");
    let mut w = JournalWriter::open(&jdir, &fingerprint).unwrap();
    for i in 0..cache.rows() {
        w.append(&cache.paths[i], &cache.sha256[i], cache.row(i))
            .unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let journal = std::fs::read(jdir.join(tlearn_cache::JOURNAL_FILE)).unwrap();
    let files = [
        tlearn_cache::META_FILE,
        tlearn_cache::FEATURES_FILE,
        tlearn_cache::INDEX_FILE,
        tlearn_cache::SKIPPED_FILE,
    ]
    .into_iter()
    .map(|f| (f, std::fs::read(out.join(f)).unwrap()))
    .collect();
    CacheSeed {
        _tmp: tmp,
        files,
        fingerprint,
        journal,
    }
}

/// `features.npy` (`npy`, a version-1 file) with its header rewritten to declare `shape` and
/// `descr`, the data kept: the fields a byte mutation rarely turns into large numbers.
fn with_npy_header(npy: &[u8], descr: &str, shape: &[u64]) -> Vec<u8> {
    let data_at = 10 + u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let mut h = format!(
        "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    )
    .into_bytes();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut out = npy[..8].to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&npy[data_at..]);
    out
}

const EDGE_SIZES: [u64; 9] = [
    0,
    1,
    6,
    48,
    1 << 31,
    1 << 32,
    1_000_000_000_000,
    1 << 62,
    u64::MAX,
];

fn cache_input() -> impl Strategy<Value = (usize, Vec<u8>)> {
    let files = cache_seed_cached();
    let npy = files[1].1.clone();
    assert_eq!(files[1].0, tlearn_cache::FEATURES_FILE);
    let bytes = (0..files.len())
        .prop_flat_map(move |k| input(vec![files[k].1.clone()]).prop_map(move |b| (k, b)));
    let header = (
        prop::sample::select(vec!["<f4", ">f4", "<f8", "|u1", "<i4"]),
        prop::collection::vec(prop::sample::select(EDGE_SIZES.to_vec()), 0..4),
    )
        .prop_map(move |(descr, shape)| (1, with_npy_header(&npy, descr, &shape)));
    prop_oneof![4 => bytes, 1 => header]
}

/// The bound on any one allocation of a reader given `len` bytes of files.
fn bound(len: usize) -> usize {
    8 * len + (1 << 20)
}

proptest! {
    #[test]
    fn reading_a_mutated_cache_never_panics((k, bytes) in cache_input()) {
        let seed = cache_seed_cached();
        let dir = tempfile::tempdir().unwrap();
        let mut total = 0;
        for (j, (name, original)) in seed.iter().enumerate() {
            let b = if j == k { &bytes } else { original };
            total += b.len();
            std::fs::write(dir.path().join(name), b).unwrap();
        }
        let (r, largest) = largest_alloc(|| {
            let read = FeatureCache::read(dir.path()).map(|c| {
                c.map(|c| {
                    // What train does with a cache that loads.
                    let _ = c.check_finite();
                    let _ = c.check_trainable();
                    (0..c.rows()).map(|i| c.row(i).len()).sum::<usize>()
                })
            });
            let loaded = FeatureCache::load(dir.path()).map(|c| c.rows());
            (read, loaded)
        });
        match r {
            (Ok(_), _) | (Err(_), Err(_)) => {}
            (Err(e), Ok(_)) => prop_assert!(false, "read failed ({e}) but load succeeded"),
        }
        prop_assert!(largest <= bound(total), "one allocation of {largest} bytes for {total}");
    }
}

/// The seed cache and the data set it was extracted from, made once per test binary.
fn cache_seed_whole() -> &'static CacheSeedWithData {
    static SEED: std::sync::OnceLock<CacheSeedWithData> = std::sync::OnceLock::new();
    SEED.get_or_init(|| {
        let seed = cache_seed();
        let data = seed._tmp.path().join("data");
        CacheSeedWithData { data, seed }
    })
}

struct CacheSeedWithData {
    seed: CacheSeed,
    data: PathBuf,
}

/// A rows mutation of a real cache: `index.csv`'s rows permuted (`features.npy`'s alike when
/// `both`), or row `to` overwritten by a copy of row `from`.
#[derive(Debug, Clone)]
enum RowEdit {
    Permute { perm: Vec<usize>, both: bool },
    Duplicate { from: usize, to: usize },
}

fn row_edit(n: usize) -> impl Strategy<Value = RowEdit> {
    prop_oneof![
        (
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            any::<bool>()
        )
            .prop_map(|(perm, both)| RowEdit::Permute { perm, both }),
        (0..n, 0..n).prop_map(|(from, to)| RowEdit::Duplicate { from, to }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), ..ProptestConfig::default() })]
    /// A real cache whose rows were permuted or duplicated: `load` refuses it (naming
    /// `index.csv` and a line) unless the rows are as written; every row `read` does not list
    /// as misplaced holds its own image's vector; and `extract` over it ends with the cache as
    /// it was, byte for byte.
    #[test]
    fn a_cache_with_rows_permuted_or_duplicated_is_refused_and_repaired(edit in row_edit(6)) {
        let whole = cache_seed_whole();
        let files = &whole.seed.files;
        let file = |name: &str| &files.iter().find(|(n, _)| *n == name).unwrap().1;
        let original = FeatureCache::load(&whole.seed._tmp.path().join("cache")).unwrap();
        let index = String::from_utf8(file(tlearn_cache::INDEX_FILE).clone()).unwrap();
        let lines: Vec<&str> = index.lines().collect();
        let (header, rows) = (lines[0], &lines[1..]);
        prop_assert_eq!(rows.len(), 6);
        let (new_rows, x_order): (Vec<&str>, Vec<usize>) = match &edit {
            RowEdit::Permute { perm, both } => (
                perm.iter().map(|&i| rows[i]).collect(),
                if *both { perm.clone() } else { (0..6).collect() },
            ),
            RowEdit::Duplicate { from, to } => {
                let mut r = rows.to_vec();
                r[*to] = rows[*from];
                (r, (0..6).collect())
            }
        };
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let mut text = header.to_string() + "\n";
        for r in &new_rows {
            text += r;
            text += "\n";
        }
        std::fs::write(dir.path().join(tlearn_cache::INDEX_FILE), text).unwrap();
        let x = original.x.select(ndarray::Axis(0), &x_order);
        let mut npy = Vec::new();
        ndarray_npy::WriteNpyExt::write_npy(&x, &mut npy).unwrap();
        std::fs::write(dir.path().join(tlearn_cache::FEATURES_FILE), npy).unwrap();

        let unchanged = new_rows == rows;
        let loaded = FeatureCache::load(dir.path());
        prop_assert_eq!(loaded.is_ok(), unchanged, "{:?}", loaded.as_ref().err());
        if let Err(e) = loaded {
            let e = e.to_string();
            prop_assert!(e.contains("index.csv: line ") && e.contains("path order"), "{}", e);
        }
        let read = FeatureCache::read(dir.path()).unwrap().unwrap();
        prop_assert_eq!(read.misplaced.is_empty(), unchanged);
        for i in (0..6).filter(|i| !read.misplaced.contains(i)) {
            let j = original.paths.iter().position(|p| *p == read.paths[i]).unwrap();
            prop_assert_eq!(read.row(i), original.row(j), "row {} ({})", i, &read.paths[i]);
        }

        let mut opts = tlearn_extract::extract::Options::new(&whole.data, dir.path());
        opts.progress = false;
        tlearn_extract::extract::extract(&Pixels::new(4, false), &opts).unwrap();
        for name in [tlearn_cache::INDEX_FILE, tlearn_cache::FEATURES_FILE] {
            let got = std::fs::read(dir.path().join(name)).unwrap();
            prop_assert!(&got == file(name), "{} differs after the repair", name);
        }
    }
}

/// The seed cache's files, made once per test binary.
fn cache_seed_cached() -> &'static [(&'static str, Vec<u8>)] {
    static SEED: std::sync::OnceLock<Vec<(&'static str, Vec<u8>)>> = std::sync::OnceLock::new();
    SEED.get_or_init(|| cache_seed().files)
}

proptest! {
    #[test]
    fn reading_a_mutated_journal_never_panics(bytes in input(vec![cache_seed().journal])) {
        let seed = journal_seed_cached();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(tlearn_cache::JOURNAL_FILE);
        std::fs::write(&path, &bytes).unwrap();
        let (r, largest) = largest_alloc(|| journal::read_journal(dir.path(), seed));
        // A damaged journal is no error (it is only a resume aid): its readable records.
        let map = r.map_err(|e| TestCaseError::fail(format!("read_journal failed: {e}")))?;
        prop_assert!(largest <= bound(bytes.len()), "one allocation of {largest} bytes");
        // Reopening for append cuts a torn tail and keeps the complete records readable.
        let reopened = JournalWriter::open(dir.path(), seed);
        prop_assert!(reopened.is_ok(), "{:?}", reopened.err());
        drop(reopened);
        let again = journal::read_journal(dir.path(), seed).unwrap();
        prop_assert_eq!(again.len(), map.len());
    }
}

/// The fingerprint of the seed journal, made once.
fn journal_seed_cached() -> &'static Fingerprint {
    static SEED: std::sync::OnceLock<Fingerprint> = std::sync::OnceLock::new();
    SEED.get_or_init(|| cache_seed().fingerprint)
}

fn cut_set_seed() -> Vec<u8> {
    use tlearn_cache::set::{cut_dir_name, write_set, CutEntry, CutSet};
    let cuts = ["features", "stage6", "/blocks.5/Add_output_0"]
        .iter()
        .map(|n| CutEntry {
            name: n.to_string(),
            dir: cut_dir_name(n),
            dim: 1280,
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    write_set(
        dir.path(),
        &CutSet::new("efficientnet-lite0", "/data/tuxpaint", cuts),
    )
    .unwrap();
    std::fs::read(dir.path().join(tlearn_cache::set::SET_FILE)).unwrap()
}

proptest! {
    #[test]
    fn reading_a_mutated_cut_set_never_panics(bytes in input(vec![cut_set_seed()])) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(tlearn_cache::set::SET_FILE), &bytes).unwrap();
        let (r, largest) = largest_alloc(|| {
            (tlearn_cache::set::read_set(dir.path()).map(|s| s.cuts.len()),
             tlearn_cache::set::resolve(dir.path()).map(|c| c.len()))
        });
        match r {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            other => prop_assert!(false, "read_set and resolve disagree: {other:?}"),
        }
        prop_assert!(largest <= bound(bytes.len()), "one allocation of {largest} bytes");
    }
}

// ---------------------------------------------------------------- saved heads

fn head_fixtures() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/tlearn-heads/tests/fixtures");
    [
        "v1-iris-logistic.json",
        "v1-iris-linear-svm.json",
        "v1-iris-rbf-svm.json",
    ]
    .iter()
    .map(|f| std::fs::read(dir.join(f)).unwrap())
    .collect()
}

/// A JSON-level edit of a head file: a number replaced by an edge value, an array cut short
/// or grown, a field removed.
#[derive(Debug, Clone)]
enum JsonEdit {
    Number(usize, usize),
    ArrayLen(usize, usize),
    Remove(usize),
}

const EDGE_NUMBERS: [&str; 9] = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    "1e-320",
    "4294967296",
    "18446744073709551615",
    "1000000000000",
    "3",
];

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        (any::<usize>(), 0..EDGE_NUMBERS.len()).prop_map(|(i, k)| JsonEdit::Number(i, k)),
        (any::<usize>(), 0usize..6).prop_map(|(i, n)| JsonEdit::ArrayLen(i, n)),
        any::<usize>().prop_map(JsonEdit::Remove),
    ]
}

/// Visit every node of `v` in a fixed order, counting, and apply `f` to node `target`.
fn visit(
    v: &mut serde_json::Value,
    n: &mut usize,
    target: usize,
    f: &mut dyn FnMut(&mut serde_json::Value),
) {
    if *n == target {
        f(v);
    }
    *n += 1;
    match v {
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| visit(x, n, target, f)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| visit(x, n, target, f)),
        _ => {}
    }
}

fn count(v: &serde_json::Value) -> usize {
    1 + match v {
        serde_json::Value::Array(a) => a.iter().map(count).sum(),
        serde_json::Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

fn apply_json(seed: &[u8], edits: &[JsonEdit]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(seed).unwrap();
    for e in edits {
        let total = count(&v);
        let target = match e {
            JsonEdit::Number(i, _) | JsonEdit::ArrayLen(i, _) | JsonEdit::Remove(i) => i % total,
        };
        let mut f = |x: &mut serde_json::Value| match (e, x) {
            (JsonEdit::Number(_, k), x) if x.is_number() || x.is_null() => {
                *x = serde_json::from_str(EDGE_NUMBERS[*k]).unwrap();
            }
            (JsonEdit::ArrayLen(_, len), serde_json::Value::Array(a)) => {
                let fill = a.first().cloned().unwrap_or(serde_json::Value::from(1));
                a.resize(*len, fill);
            }
            (JsonEdit::Remove(_), serde_json::Value::Object(o)) => {
                if let Some(k) = o.keys().next().cloned() {
                    o.remove(&k);
                }
            }
            _ => {}
        };
        visit(&mut v, &mut 0, target, &mut f);
    }
    serde_json::to_vec(&v).unwrap()
}

fn head_input() -> impl Strategy<Value = Vec<u8>> {
    let seeds = head_fixtures();
    let n = seeds.len();
    prop_oneof![
        1 => input(seeds.clone()),
        1 => (0..n, prop::collection::vec(json_edit(), 1..5))
            .prop_map(move |(k, edits)| apply_json(&seeds[k], &edits)),
    ]
}

proptest! {
    #[test]
    fn loading_a_mutated_head_never_panics(bytes in head_input()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.json");
        std::fs::write(&path, &bytes).unwrap();
        let (r, largest) = largest_alloc(|| {
            tlearn_heads::model_file::SavedHead::load(&path).map(|h| {
                // A head that loads predicts without panicking (validate's promise).
                let x = ndarray::Array2::<f32>::from_shape_fn((3, h.dim), |(i, j)| {
                    (i * 7 + j) as f32 * 0.25 - 1.0
                });
                h.predict_proba(x.view())
            })
        });
        if let Ok(Ok(p)) = r {
            for row in p.outer_iter() {
                if row.iter().all(|v| v.is_finite()) {
                    let sum: f32 = row.sum();
                    prop_assert!((sum - 1.0).abs() < 1e-3, "probabilities sum to {sum}");
                }
            }
        }
        prop_assert!(largest <= bound(bytes.len()), "one allocation of {largest} bytes");
    }
}
