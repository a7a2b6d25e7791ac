//! tlearn's operators (`tlearn_ops::rewrite`) in the real EfficientNet-Lite graphs. The depthwise one
//! replaces every depthwise convolution of the real EfficientNet-Lite
//! graphs (with their ReLU6 folded in), and the network computes bit-identical codes to those of
//! tract's own `DepthWiseConv`, on the real photos of ../shared/fixtures/efficientnet-lite.

use std::path::{Path, PathBuf};

use ndarray::Array4;
use ndarray_npy::read_npy;
use tlearn_ops::pointwise_op::min_plane;
use tlearn_ops::rewrite;
use tract_onnx::prelude::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Depthwise convolutions in the ONNX file itself: `Conv` nodes with `group` > 1.
fn onnx_depthwise_count(path: &Path) -> usize {
    let proto = tract_onnx::onnx().proto_model_for_path(path).unwrap();
    proto
        .graph
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type == "Conv" && n.attribute.iter().any(|a| a.name == "group" && a.i > 1))
        .count()
}

/// Lite`n`'s graph cut at `features` for a batch of `batch`, decluttered, with its path and the
/// fixture photos (already preprocessed by the reference pipeline).
fn load(n: u32, batch: Option<usize>) -> (PathBuf, Array4<f32>, TypedModel) {
    // The file `models/registry.toml` names for efficientnet-lite`n` (`make models`).
    let path = repo().join(format!("models/efficientnet-lite{n}.onnx"));
    assert!(path.is_file(), "{} missing (make models)", path.display());
    let x: Array4<f32> = read_npy(repo().join(format!(
        "../shared/fixtures/efficientnet-lite/lite{n}_input.npy"
    )))
    .unwrap();
    let (rows, c, h, w) = x.dim();
    let mut model = tract_onnx::onnx().model_for_path(&path).unwrap();
    model.select_outputs_by_name(["features"]).unwrap();
    model
        .set_input_fact(0, f32::fact([batch.unwrap_or(rows), c, h, w]).into())
        .unwrap();
    let decluttered = model.into_typed().unwrap().into_decluttered().unwrap();
    (path, x, decluttered)
}

fn check(n: u32) {
    let (path, x, decluttered) = load(n, None);
    let (rows, c, h, w) = x.dim();
    let mut rewritten = decluttered.clone();
    let replaced = rewrite::rewrite_depthwise(&mut rewritten).unwrap();
    assert_eq!(
        replaced,
        onnx_depthwise_count(&path),
        "lite{n}: every depthwise conv"
    );
    assert!(replaced >= 16);

    let tract_plan = decluttered.into_optimized().unwrap();
    let tract_dw = tract_plan
        .nodes
        .iter()
        .filter(|n| n.op().name() == "DepthWiseConv")
        .count();
    assert_eq!(
        tract_dw, replaced,
        "lite{n}: tract's own plan runs DepthWiseConv"
    );
    let ours = rewritten.into_optimized().unwrap();
    let names: Vec<String> = ours
        .nodes
        .iter()
        .map(|n| n.op().name().to_string())
        .collect();
    assert!(
        !names.iter().any(|n| n == "DepthWiseConv"),
        "lite{n}: tract depthwise left"
    );
    assert_eq!(
        names.iter().filter(|n| *n == "TlearnDepthwise").count(),
        replaced
    );
    // ReLU6 folded into every one of them.
    for node in ours
        .nodes
        .iter()
        .filter(|n| n.op().name() == "TlearnDepthwise")
    {
        let info = node.op().info().unwrap().join(" ");
        assert!(
            info.contains("clamp: Some((0.0, 6.0))"),
            "lite{n}: {} {info}",
            node.name
        );
    }

    let input = Tensor::from_shape(&[rows, c, h, w], x.as_slice().unwrap()).unwrap();
    let run = |m: TypedModel| {
        let out = m
            .into_runnable()
            .unwrap()
            .run(tvec!(input.clone().into()))
            .unwrap();
        out[0].to_plain_array_view::<f32>().unwrap().to_owned()
    };
    let (want, got) = (run(tract_plan), run(ours));
    assert_eq!(want.shape(), got.shape());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = want
        .iter()
        .zip(got.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    println!("lite{n}: {replaced} depthwise convs replaced; codes max |diff| {worst:.2e} (max |code| {scale:.2})");
    assert!(
        worst <= 1e-4 * scale.max(1.0),
        "lite{n}: codes differ by {worst}"
    );
}

/// 1×1 convolutions in the ONNX file: `Conv` nodes whose weights are `[O, I, 1, 1]`, group 1.
fn onnx_pointwise_count(path: &Path) -> usize {
    let proto = tract_onnx::onnx().proto_model_for_path(path).unwrap();
    let graph = proto.graph.unwrap();
    let dims: std::collections::HashMap<&str, &[i64]> = graph
        .initializer
        .iter()
        .map(|t| (t.name.as_str(), t.dims.as_slice()))
        .collect();
    graph
        .node
        .iter()
        .filter(|n| {
            n.op_type == "Conv"
                && !n.attribute.iter().any(|a| a.name == "group" && a.i > 1)
                && dims
                    .get(n.input[1].as_str())
                    .is_some_and(|d| d[2..] == [1, 1])
        })
        .count()
}

/// At batch 1 (the path extraction takes), with every tlearn operator in: the depthwise and the
/// 1×1 convolutions replaced (but those on planes below `min_plane`), codes equal to tract's on
/// every real photo: bit for bit with AVX-512 where tract's stem is a matrix product, else
/// within 1e-5 of the largest code.
fn check_batch1(n: u32) {
    let (path, x, decluttered) = load(n, Some(1));
    let (rows, c, h, w) = x.dim();
    let mut rewritten = decluttered.clone();
    let replaced = rewrite::apply(&mut rewritten, rewrite::Ops::All).unwrap();
    assert_eq!(replaced.depthwise, onnx_depthwise_count(&path), "lite{n}");
    // The stem (3 colour planes → 32 channels) runs tlearn's direct convolution where the CPU
    // has its vector path, else tract's.
    let stem = usize::from(tlearn_ops::stem_kernel::available());
    assert_eq!(replaced.stem, stem, "lite{n}: the stem");
    // Every 1×1 conv is replaced except those on planes below pointwise_op::min_plane (7×7
    // ones stay tract's when the operator runs `gemm`; with AVX-512 it takes every plane).
    let small_planes = decluttered
        .nodes
        .iter()
        .filter(|n| n.op().name() == "EinSum")
        .filter(|n| {
            let shape = n.outputs[0].fact.shape.as_concrete().unwrap().to_vec();
            shape[shape.len() - 2] * shape[shape.len() - 1]
                < min_plane(tlearn_ops::pointwise_kernel::available())
        })
        .count();
    assert_eq!(
        replaced.pointwise + small_planes,
        onnx_pointwise_count(&path),
        "lite{n}: every 1×1 conv"
    );
    // With AVX-512 the last stages' maps stay channel-blocked between tlearn's operators
    // (the printed line below); `planar` keeps them all NCHW.
    let mut planar = decluttered.clone();
    let planar_replaced = rewrite::apply(&mut planar, rewrite::Ops::Planar).unwrap();
    assert_eq!(planar_replaced.blocked, 0);
    assert_eq!(
        (planar_replaced.depthwise, planar_replaced.pointwise),
        (replaced.depthwise, replaced.pointwise)
    );
    if tlearn_ops::pointwise_kernel::available() {
        // Lite0's 14×14 and 7×7 stages; Lite1 (15×15, 8×8) keeps fewer maps blocked and
        // Lite2 (17×17, 9×9: plane sizes outside the lanes layout's) none.
        if n == 0 {
            assert!(replaced.blocked >= 20, "lite{n}: {replaced:?}");
        }
    } else {
        assert_eq!(
            replaced.blocked, 0,
            "lite{n}: no blocked maps without AVX-512"
        );
    }
    let planar = planar.into_optimized().unwrap().into_runnable().unwrap();
    // The previous path (`gemm`, planes from 10×10 up), what a CPU without AVX-512 runs.
    let mut gemm = decluttered.clone();
    let gemm_replaced = rewrite::apply(&mut gemm, rewrite::Ops::Gemm).unwrap();
    let gemm = gemm.into_optimized().unwrap().into_runnable().unwrap();
    let tract_plan = decluttered.into_optimized().unwrap();
    // Where tract lowers the stem to an im2col and a matrix product (Lite0, Lite1), it sums in
    // the order tlearn's stem does; its direct convolution (Lite2's 260×260 input) sums in
    // another.
    let tract_direct_stem = tract_plan
        .nodes
        .iter()
        .any(|n| n.op().name() == "DirectSpatialConv");
    let tract_plan = tract_plan.into_runnable().unwrap();
    let ours = rewritten.into_optimized().unwrap();
    assert!(!ours.nodes.iter().any(|n| n.op().name() == "DepthWiseConv"));
    assert!(ours.nodes.iter().any(|n| n.op().name() == "TlearnStem"));
    // Every ReLU6 feeding a depthwise convolution (the expand convolutions', the stem's) moved
    // into the depthwise operator's input copy.
    let moved = ours
        .nodes
        .iter()
        .filter(|n| n.op().name() == "TlearnDepthwise")
        .filter(|n| {
            n.op()
                .info()
                .unwrap()
                .join(" ")
                .contains("input clamp: Some((0.0, 6.0))")
        })
        .count();
    assert_eq!(moved, replaced.depthwise, "lite{n}: input clamps moved");
    assert!(!ours.nodes.iter().any(|n| n.op().name().contains("Max+Min")));
    let ours = ours.into_runnable().unwrap();
    let mut worst = 0f32;
    for i in 0..rows {
        let one = x.slice(ndarray::s![i..i + 1, .., .., ..]).to_owned();
        let input = Tensor::from_shape(&[1, c, h, w], one.as_slice().unwrap()).unwrap();
        let run = |p: &std::sync::Arc<TypedSimplePlan>| {
            let out = p.run(tvec!(input.clone().into())).unwrap();
            out[0].to_plain_array_view::<f32>().unwrap().to_owned()
        };
        let want = run(&tract_plan);
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        // The blocked maps change where values sit, not what is computed: bit for bit.
        let (blocked, unblocked) = (run(&ours), run(&planar));
        assert!(
            blocked
                .iter()
                .zip(unblocked.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "lite{n} photo {i}: channel-blocked maps changed the codes"
        );
        for (path, plan) in [("all", &ours), ("gemm", &gemm)] {
            let got = run(plan);
            assert_eq!(want.shape(), got.shape());
            let d = want
                .iter()
                .zip(got.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                d <= 1e-5 * scale.max(1.0),
                "lite{n} photo {i} ({path}): codes differ by {d}"
            );
            // With AVX-512 the 1×1 and stem kernels sum as tract's own AVX-512 matrix kernels
            // do (the products from zero with fused multiply-adds in the weights' order, then
            // the bias, the skip connection, the clamp): tract's codes bit for bit.
            if path == "all" && tlearn_ops::pointwise_kernel::available() && !tract_direct_stem {
                assert_eq!(d, 0.0, "lite{n} photo {i}: not tract's codes bit for bit");
            }
            worst = worst.max(d);
        }
    }
    assert!(gemm_replaced.pointwise > 0 && gemm_replaced.pointwise <= replaced.pointwise);
    println!(
        "lite{n} batch 1: {replaced:?} (gemm path {gemm_replaced:?}); codes max |diff| vs tract {worst:.2e}"
    );
}

#[test]
#[ignore = "needs make models; run by make test"]
fn batch1_rewrites_keep_the_codes() {
    for n in 0..3 {
        check_batch1(n);
    }
}

#[test]
#[ignore = "needs make models; run by make test"]
fn lite0_depthwise_rewrite_keeps_the_codes() {
    check(0);
}

#[test]
#[ignore = "needs make models; run by make test"]
fn lite1_depthwise_rewrite_keeps_the_codes() {
    check(1);
}

#[test]
#[ignore = "needs make models; run by make test"]
fn lite2_depthwise_rewrite_keeps_the_codes() {
    check(2);
}
