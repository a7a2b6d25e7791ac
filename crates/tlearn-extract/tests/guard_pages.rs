//! Every backbone's extraction under a guard-page allocator: each heap block of at least a page
//! ends flush against an inaccessible page, so an operator kernel (tlearn's own AVX-512 ones,
//! `unsafe` pointer code) that reads or writes past the end of a tensor faults at once, instead
//! of now and then depending on where the allocator put the tensor. Written after a CI run in
//! which `tlearn extract` grew to 24 GB and was killed, which never happened again here.
//! Needs `make models data` (run by `make test`).
//!
//! The same check before a tensor's start: `GUARD=front cargo test --release -p
//! tlearn-extract --test guard_pages -- --ignored` (the mode is read once, before any block).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

const PAGE: usize = 4096;
/// 0 until the first block, then 1 (guard after each block) or 2 (before: `GUARD=front`).
static MODE: AtomicU8 = AtomicU8::new(0);

/// Whether the guard page goes before the block; read from the environment once, with
/// `getenv(3)`, which does not allocate (this runs inside the allocator).
fn front() -> bool {
    let mut m = MODE.load(Ordering::Relaxed);
    if m == 0 {
        // SAFETY: getenv with a NUL-terminated name; the value is only read, at once.
        let v = unsafe { libc::getenv(c"GUARD".as_ptr()) };
        let is_front =
            !v.is_null() && unsafe { std::ffi::CStr::from_ptr(v) }.to_bytes() == b"front";
        m = if is_front { 2 } else { 1 };
        MODE.store(m, Ordering::Relaxed);
    }
    m == 2
}

struct Guard;

fn guarded(l: &Layout) -> bool {
    l.size() >= PAGE && l.align() <= PAGE
}

fn span(size: usize) -> usize {
    size.div_ceil(PAGE) * PAGE + PAGE
}

unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if !guarded(&l) {
            return System.alloc(l);
        }
        let len = span(l.size());
        let base = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if base == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let base = base as *mut u8;
        if front() {
            libc::mprotect(base as _, PAGE, libc::PROT_NONE);
            base.add(PAGE)
        } else {
            let guard = base.add(len - PAGE);
            libc::mprotect(guard as _, PAGE, libc::PROT_NONE);
            let end = guard as usize;
            ((end - l.size()) & !(l.align() - 1)) as *mut u8
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if !guarded(&l) {
            return System.dealloc(p, l);
        }
        let len = span(l.size());
        let base = if front() {
            p.sub(PAGE)
        } else {
            ((p as usize) & !(PAGE - 1)) as *mut u8
        };
        libc::munmap(base as _, len);
    }
}

#[global_allocator]
static A: Guard = Guard;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `model` with every registry cut over `data`, into a fresh cache; the codes are all finite.
fn extract_all_cuts(model: &str, data: &Path) {
    assert!(
        data.join("MANIFEST.json").exists(),
        "{} is missing: run `make data` (make test does)",
        data.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let models = repo().join("models");
    let enc = tlearn_extract::open::open_encoder(
        model,
        Some(&models),
        &tlearn_cache::LayerSpec::All,
        Default::default(),
        &Default::default(),
        Default::default(),
        &Default::default(),
    )
    .unwrap_or_else(|e| panic!("{model}: {e:#} (run `make models`; make test does)"));
    let mut opts = tlearn_extract::extract::Options::new(data, tmp.path().join("cache"));
    opts.progress = false;
    let s = tlearn_extract::extract::extract(enc.as_ref(), &opts)
        .unwrap_or_else(|e| panic!("{model} on {}: {e:#}", data.display()));
    let cache = tlearn_cache::set::read_joined(&tmp.path().join("cache"))
        .unwrap()
        .expect("a cache was written");
    assert!(cache.x.nrows() > 0, "{model}: {}", s.render());
    assert!(
        cache.x.iter().all(|v| v.is_finite()),
        "{model}: non-finite codes"
    );
}

#[test]
#[ignore = "needs make models data; runs every backbone under guard pages (make test runs it)"]
fn every_backbone_stays_inside_its_tensors_on_photos_and_pngs() {
    let smoke = repo().join("data/smoke");
    for model in [
        "efficientnet-lite0",
        "efficientnet-lite1",
        "efficientnet-lite2",
        "mobilenetv2",
        "squeezenet1.1",
    ] {
        extract_all_cuts(model, &smoke);
    }
    // PNGs of other sizes, a few hundred of them, on the default backbone.
    extract_all_cuts("efficientnet-lite0", &repo().join("data/tuxpaint"));
}
