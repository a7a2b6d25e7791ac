//! `eval` and `predict` refuse a head.json whose arrays disagree in shape with exit status 1
//! and a message naming the field (they used to panic with exit status 101).

mod common;
use common::*;

fn fixture(name: &str) -> serde_json::Value {
    read_json(&repo().join("crates/tlearn-heads/tests/fixtures").join(name))
}

/// Drop the last entry of a 1-d ndarray-serde array.
fn shrink(a: &mut serde_json::Value) {
    a["data"].as_array_mut().unwrap().pop();
    let n = a["data"].as_array().unwrap().len();
    a["dim"] = serde_json::json!([n]);
}

#[test]
fn malformed_heads_exit_1_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bias = fixture("v1-iris-linear-svm.json");
    shrink(&mut bias["head"]["bias"]);
    let mut inv_std = fixture("v1-iris-logistic.json");
    shrink(&mut inv_std["transform"]["inv_std"]);
    let mut rho = fixture("v1-iris-rbf-svm.json");
    shrink(&mut rho["head"]["rho"]);
    let img = tmp.path().join("x.png");
    std::fs::write(&img, b"not really a png").unwrap();
    for (field, v) in [
        ("head.bias", bias),
        ("transform.inv_std", inv_std),
        ("head.rho", rho),
    ] {
        let p = tmp.path().join("head.json");
        std::fs::write(&p, v.to_string()).unwrap();
        let eval = tlearn()
            .args(["eval", "--head"])
            .arg(&p)
            .arg(tmp.path())
            .arg("--out")
            .arg(tmp.path().join("out"))
            .output()
            .unwrap();
        let predict = tlearn()
            .args(["predict", "--head"])
            .arg(&p)
            .arg(&img)
            .output()
            .unwrap();
        for (what, out) in [("eval", eval), ("predict", predict)] {
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(1),
                "{what} with a bad {field}: {err}"
            );
            assert!(
                err.contains(&format!("`{field}`")) && err.contains("head.json"),
                "{what} with a bad {field}: {err}"
            );
        }
    }
}
