//! The reports of a real training run on a small cache the test writes: the CV table (its
//! hyper-parameter columns, convergence, edge notes, final fit), the cut table, the CV curve and
//! the confusion matrix pictures, and the files `train` writes.

use ndarray::Array2;
use tempfile::tempdir;
use tlearn_cache::{IndexRow, Meta};
use tlearn_heads::train::{CutConfig, TrainConfig, Training};
use tlearn_heads::transform::TransformKind;
use tlearn_heads::HeadChoice;

/// Three overlapping classes in 6 dimensions, 40 rows each, deterministic.
fn write_blobs(dir: &std::path::Path) {
    let (n, d) = (120, 6);
    let x = Array2::from_shape_fn((n, d), |(i, j)| {
        let cls = (i % 3) as f32;
        let wobble = (((i * 7919 + j * 104_729) % 1000) as f32 / 1000.0 - 0.5) * 3.0;
        if j == i % 3 {
            cls + 1.0 + wobble
        } else {
            wobble
        }
    });
    let labels: Vec<String> = (0..n).map(|i| format!("class{}", i % 3)).collect();
    // Rows in path order, as the format wants: the classes' blocks one after the other.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (i % 3, i));
    let index: Vec<IndexRow> = order
        .iter()
        .map(|&i| IndexRow {
            path: format!("{}/{i:05}.png", labels[i]),
            label: labels[i].clone(),
            sha256: format!("{i:064x}"),
        })
        .collect();
    let meta = Meta::new(
        "/nowhere",
        d,
        n,
        vec!["class0".into(), "class1".into(), "class2".into()],
        tlearn_cache::testing::fingerprint("blobs", "abc123"),
        "2026-01-01T00:00:00Z",
    );
    let features: Vec<f32> = order.iter().flat_map(|&i| x.row(i).to_vec()).collect();
    tlearn_cache::write(dir, &meta, &index, &features, &[]).unwrap();
}

#[test]
fn a_training_run_reports_its_grid_and_writes_its_files() {
    let tmp = tempdir().unwrap();
    let cache = tmp.path().join("cache");
    write_blobs(&cache);
    let cfg = CutConfig::new(TrainConfig {
        heads: HeadChoice::Auto,
        c_grid: vec![1e-5, 1e-4],
        transforms: vec![TransformKind::Standard],
        grid_extension: 0,
        folds: 3,
        ..TrainConfig::default()
    });
    let out = Training::open(&[cache], &|_| None, cfg)
        .unwrap()
        .run(|_| {})
        .unwrap();
    let table = tlearn_report::cv_table(&out.cv.report, true);
    // One column per hyper-parameter of the families tried: C for all, gamma for the RBF SVM.
    let header = table.lines().next().unwrap();
    assert!(
        header.contains(" C ") && header.contains("gamma"),
        "{table}"
    );
    assert!(
        table.contains("linear-svm") && table.contains("rbf-svm"),
        "{table}"
    );
    assert!(
        table.contains("final fit:") && table.contains("converged"),
        "{table}"
    );
    // A C grid of two values: the pick sits at one of its edges, and the table says so.
    assert!(
        table.contains("note: C at top of grid") || table.contains("note: C at bottom of grid"),
        "{table}"
    );
    // The short table: the best few and the chosen one, marked, and where the rest are.
    let short = tlearn_report::cv_table(&out.cv.report, false);
    let rows = short
        .lines()
        .filter(|l| l.contains("-svm ") || l.contains("logistic "))
        .count();
    assert!(
        rows <= tlearn_report::text::SHORT_TABLE_ROWS + 1 && rows < out.cv.report.candidates.len(),
        "{short}"
    );
    assert!(
        short.lines().any(|l| l.starts_with('*')) && short.contains("all of them: -v"),
        "{short}"
    );
    let cuts = tlearn_report::cuts::text(out.cv.cuts.as_ref().unwrap(), false);
    assert!(
        cuts.contains("chosen cut:") && cuts.contains("scenario:"),
        "{cuts}"
    );

    let png = tmp.path().join("cv-curve.png");
    assert!(tlearn_report::plots::cv_curve_png(&out.cv.report, &png).unwrap());
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");

    let dir = tmp.path().join("run");
    let written = tlearn_report::train_files::write(&out, &dir).unwrap();
    assert!(written.files.head.is_file() && written.files.cv.is_file());
    // One feature set: no comparison of cuts to draw.
    assert_eq!(written.cuts_png, None);
}

#[test]
fn confusion_png_is_written() {
    let tmp = tempdir().unwrap();
    let classes: Vec<String> = (0..4).map(|i| format!("class-{i}")).collect();
    let conf = vec![
        vec![5, 1, 0, 0],
        vec![0, 6, 0, 0],
        vec![1, 0, 4, 1],
        vec![0, 0, 0, 7],
    ];
    let p = tmp.path().join("confusion.png");
    tlearn_report::confusion_png(&conf, &classes, "test", &p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
}
