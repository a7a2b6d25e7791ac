//! `tlearn`: transfer learning for image classification, the CS231n "small data set" way.
//! A pretrained CNN cut before its classifier turns images into CNN codes; a head (linear SVM,
//! RBF SVM, logistic regression, a small dense network) is trained on them and judged on
//! held-out images.

mod cmd;
mod flags;

use flags::hiargs::HiArgs;

/// mimalloc instead of glibc's malloc. Extraction threads allocate and free megabytes of
/// activations per image while the vectors kept for the cache stay: glibc's main heap then
/// fragmented in some runs, growing without bound (`malloc_stats`: 1.1 GB held, 28 MB in use,
/// after 3,100 of 10,000 MNIST images on 4 threads; one CI run reached 24 GB and was killed by
/// the kernel). Which runs did was down to thread timing: 2 of 10 runs here.
/// mimalloc's v2 line without transparent huge pages (`features = ["v2", "no_thp"]`): peak RSS
/// of `extract` on the 216 Tux Paint PNGs, 2 threads, was 152 MiB with the crate's default
/// (v3, huge pages), 134 with v3 without them, 112 with v2 without them; glibc 95.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(unix)]
mod fatal_signal;

fn main() {
    // Die quietly on a closed pipe (`tlearn eval ... | head`) like any Unix tool, instead of
    // panicking in println!.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    #[cfg(unix)]
    fatal_signal::install();
    // Flags → checked arguments → the library's objects (see `flags`).
    let cli = flags::parse(std::env::args_os());
    let result = HiArgs::from_low_args(cli.command).and_then(|hi| match hi {
        HiArgs::Layers(a) => cmd::layers::run(a),
        HiArgs::Extract(a) => cmd::extract::run(a),
        HiArgs::Fit(a) => cmd::fit::run(a),
        HiArgs::Train(a) => cmd::train::run(a),
        HiArgs::Eval(a) => cmd::eval::run(a),
        HiArgs::Predict(a) => cmd::predict::run(a),
        HiArgs::Export(a) => cmd::export::run(a),
        HiArgs::Show(a) => cmd::show::run(a),
        HiArgs::Models(a) => cmd::models::run(a),
        HiArgs::ExportCodes(a) => cmd::codes::export(a),
        HiArgs::ImportCodes(a) => cmd::codes::import(a),
    });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
