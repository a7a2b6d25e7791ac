//! "Bring your own ONNX": a model given by path with its own normalisation and cut node gives
//! the same CNN codes as the registry entry for that file. Needs `make models data`.

mod common;
use common::*;

#[test]
#[ignore = "needs make models/data; run by make test"]
fn own_onnx_file_matches_the_registry_entry() {
    require_model("efficientnet-lite0");
    let smoke = dataset("smoke");
    let dir = tempfile::tempdir().unwrap();
    let by_name = dir.path().join("by-name");
    let by_path = dir.path().join("by-path");
    extract("efficientnet-lite0", &smoke, &by_name, &[]);
    let onnx = repo().join("models/efficientnet-lite0.onnx");
    let own = [
        "--layer",
        "features",
        "--crop",
        "224",
        "--value-scale",
        "1",
        "--mean",
        "127,127,127",
        "--std",
        "128,128,128",
    ];
    extract(onnx.to_str().unwrap(), &smoke, &by_path, &own);
    let a = std::fs::read(by_name.join("features.npy")).unwrap();
    let b = std::fs::read(by_path.join("features.npy")).unwrap();
    assert_eq!(a, b, "same network, same preprocessing: identical vectors");

    // Without --layer an own model is refused with a message that says what is missing.
    let out = tlearn()
        .args(["extract", "--quiet", "--model"])
        .arg(&onnx)
        .arg(&smoke)
        .arg("--out")
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--layer"));
}
