//! Training the network of `net` on cached cut maps: a linear probe first (the new classifier
//! on the pretrained block's pooled features, the block frozen), then the block and the
//! classifier together with AdamW (a low learning rate for the pretrained layers, a higher one
//! for the classifier, decoupled weight decay, cosine decay over the epochs), mini-batches,
//! dropout before the classifier, optionally mixup (each batch mixed with a permutation of
//! itself, at the cut for the joint phase and on the pooled features for the probe, the loss
//! mixed with the same weight: Zhang et al. 2018, "manifold mixup" when the mixed tensor is an
//! activation), and early stopping on an inner validation split (stratified, grouped by content
//! hash like every split of the tool): the weights of the epoch with the best validation
//! accuracy (ties: lower loss) are kept.
//!
//! Seeded and deterministic: the inner split, the batch order, the dropout masks and the mixup
//! draws come from one ChaCha stream; the matrix products and the depthwise passes give the same
//! sums run after run.

use std::time::Instant;

use anyhow::{bail, Result};
use ndarray::{Array1, Array2};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::block::TopBlock;
use crate::net::{rows_to_nhwc, AdamW, Net};

/// The fine-tuning hyper-parameters (recorded in the saved head as `params`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneParams {
    /// AdamW learning rate of the pretrained layers (0: the block stays frozen).
    pub lr_block: f64,
    /// AdamW learning rate of the new classifier (probe and joint phases).
    pub lr_head: f64,
    /// Decoupled weight decay (AdamW's lambda), both groups.
    pub weight_decay: f64,
    /// Mini-batch size.
    pub batch: usize,
    /// Epochs of the linear probe (block frozen) before the joint training.
    pub probe_epochs: usize,
    /// Most epochs of joint training.
    pub max_epochs: usize,
    /// Stop after this many joint epochs without a better validation score.
    pub patience: usize,
    /// Fraction of the training rows held out (stratified) for early stopping.
    pub val_fraction: f64,
    /// Dropout rate on the pooled features during training.
    pub dropout: f64,
    /// Mixup's Beta(alpha, alpha) parameter; 0: no mixup. Absent in heads saved before it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mixup: f64,
    pub seed: u64,
}

impl Default for FinetuneParams {
    fn default() -> Self {
        FinetuneParams {
            lr_block: 1e-4,
            lr_head: 1e-3,
            weight_decay: 1e-2,
            batch: 64,
            probe_epochs: 10,
            max_epochs: 12,
            patience: 3,
            val_fraction: 0.1,
            dropout: 0.2,
            mixup: 0.0,
            seed: 42,
        }
    }
}

impl FinetuneParams {
    pub fn check(&self) -> Result<()> {
        let ok = |v: f64| v.is_finite() && v >= 0.0;
        if !ok(self.lr_block) || !ok(self.lr_head) || self.lr_head == 0.0 {
            bail!("learning rates must be finite, lr_head > 0 and lr_block >= 0 (0: block frozen)");
        }
        if !ok(self.weight_decay) {
            bail!("weight decay must be finite and >= 0");
        }
        if self.batch == 0 {
            bail!("batch size must be at least 1");
        }
        if !(self.val_fraction > 0.0 && self.val_fraction < 0.5) {
            bail!("validation fraction must be in (0, 0.5)");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("dropout must be in [0, 1)");
        }
        if !ok(self.mixup) {
            bail!("mixup alpha must be finite and >= 0 (0: off)");
        }
        Ok(())
    }
}

/// One epoch of the training history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Epoch {
    /// `probe` (classifier alone) or `joint` (block and classifier).
    pub phase: String,
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub seconds: f64,
}

/// A fitted network: the fine-tuned block, the classifier `[K, F]` + `[K]`, how it trained.
#[derive(Debug, Clone)]
pub struct Fitted {
    pub block: TopBlock,
    pub cls_w: Array2<f32>,
    pub cls_b: Array1<f32>,
    pub history: Vec<Epoch>,
    /// The joint epoch whose weights were kept (0: the linear probe's).
    pub best_epoch: usize,
    pub train_rows: usize,
    pub val_rows: usize,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// A batch's mixup: weight `lambda` of the rows themselves, `1 - lambda` of the rows in `perm`.
struct Mix {
    lambda: f32,
    perm: Vec<usize>,
}

/// Mixes the `b` rows of `x` (`per` values each) in place with a permutation of themselves,
/// the weight drawn from Beta(alpha, alpha); `None` when mixup is off or the batch is one row.
fn mix(x: &mut [f32], per: usize, alpha: f64, rng: &mut ChaCha8Rng) -> Option<Mix> {
    let b = x.len() / per.max(1);
    if alpha <= 0.0 || b < 2 {
        return None;
    }
    let lambda = rng.sample(rand_distr::Beta::new(alpha, alpha).ok()?) as f32;
    let mut perm: Vec<usize> = (0..b).collect();
    perm.shuffle(rng);
    let src = x.to_vec();
    for (i, &j) in perm.iter().enumerate() {
        let (a, o) = (&src[j * per..(j + 1) * per], &mut x[i * per..(i + 1) * per]);
        for (v, u) in o.iter_mut().zip(a) {
            *v = lambda * *v + (1.0 - lambda) * u;
        }
    }
    Some(Mix { lambda, perm })
}

/// The batch's loss and its gradient on the logits: against `y`, or for a mixed batch the
/// same mix of the losses against `y` and against the permuted labels (cross-entropy is linear
/// in its target, so this is the loss against the mixed one-hot targets).
fn batch_loss(net: &Net, logits: &[f32], y: &[usize], m: &Option<Mix>) -> (f64, Vec<f32>) {
    let Some(m) = m else {
        return net.loss(logits, y);
    };
    let y2: Vec<usize> = m.perm.iter().map(|&j| y[j]).collect();
    let ((l1, g1), (l2, g2)) = (net.loss(logits, y), net.loss(logits, &y2));
    let l = m.lambda;
    let g = g1
        .iter()
        .zip(&g2)
        .map(|(a, b)| l * a + (1.0 - l) * b)
        .collect();
    (l as f64 * l1 + (1.0 - l as f64) * l2, g)
}

/// Maps of `rows` gathered into one channels-last batch.
fn gather(x: &[f32], per: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * per);
    for &r in rows {
        out.extend_from_slice(&x[r * per..(r + 1) * per]);
    }
    out
}

/// Mean cross-entropy and accuracy of logits `[n, k]` against `y`.
fn loss_acc(net: &Net, logits: &[f32], y: &[usize]) -> (f64, f64) {
    let (loss, _) = net.loss(logits, y);
    let k = net.classes;
    let ok = logits
        .chunks_exact(k)
        .zip(y)
        .filter(|(r, &t)| argmax(r) == t)
        .count();
    (loss, ok as f64 / y.len().max(1) as f64)
}

fn argmax(r: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in r.iter().enumerate() {
        if *v > r[best] {
            best = i;
        }
    }
    best
}

/// Pooled features `[n, F]` of the maps `x` (channels-last, `per` values each), in batches.
fn features(net: &Net, x: &[f32], per: usize, n: usize, batch: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * net.features());
    for s in (0..n).step_by(batch.max(1)) {
        let len = batch.min(n - s);
        let t = net.forward_block(x[s * per..(s + len) * per].to_vec(), len, false);
        out.extend_from_slice(&t.features);
    }
    out
}

/// A dropout mask (`0` or `1 / (1 - rate)`) of `n` values from `rng`.
fn dropout_mask(rng: &mut ChaCha8Rng, rate: f64, n: usize) -> Vec<f32> {
    let keep = 1.0 - rate;
    (0..n)
        .map(|_| {
            if rng.gen::<f64>() < keep {
                (1.0 / keep) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// Fine-tune `block` and a new classifier for `k` classes on cut maps `rows` (each `C·H·W`
/// channel-major, the `--pool flatten` layout) with labels `y` and content hashes `groups`.
/// `progress` sees every finished epoch.
pub fn fit(
    block: &TopBlock,
    rows: &[&[f32]],
    y: &[usize],
    groups: &[String],
    k: usize,
    p: &FinetuneParams,
    progress: &mut dyn FnMut(&Epoch),
) -> Result<Fitted> {
    p.check()?;
    if rows.len() != y.len() || rows.len() != groups.len() {
        bail!(
            "{} rows, {} labels, {} hashes",
            rows.len(),
            y.len(),
            groups.len()
        );
    }
    let mut net = Net::new(
        block,
        &Array2::zeros((k, block.features())),
        &Array1::zeros(k),
    )?;
    let f = net.features();
    let s =
        tlearn_heads::split::train_test_split(y, groups, k, p.val_fraction, p.seed ^ 0x5eed_f17e)?;
    let (tr, va) = (s.train, s.test);
    if va.is_empty() || tr.is_empty() {
        bail!(
            "too few images for an inner validation split ({} rows)",
            y.len()
        );
    }
    let [c, h, w] = block.input;
    let per = c * h * w;
    let pick = |ix: &[usize]| -> Result<Vec<f32>> {
        let r: Vec<&[f32]> = ix.iter().map(|&i| rows[i]).collect();
        rows_to_nhwc(&r, block.input)
    };
    let (xtr, xva) = (pick(&tr)?, pick(&va)?);
    let ytr: Vec<usize> = tr.iter().map(|&i| y[i]).collect();
    let yva: Vec<usize> = va.iter().map(|&i| y[i]).collect();
    let eval_batch = 256;
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut history = Vec::new();
    let mut order: Vec<usize> = (0..tr.len()).collect();

    // Phase 1: linear probe on the frozen block's pooled features.
    let ftr = features(&net, &xtr, per, tr.len(), eval_batch);
    let fva = features(&net, &xva, per, va.len(), eval_batch);
    let head_sizes = [f * k, k];
    let mut head_opt = AdamW::new(&head_sizes, p.lr_head, p.weight_decay);
    for e in 1..=p.probe_epochs {
        let t0 = Instant::now();
        order.shuffle(&mut rng);
        let mut sum = 0.0;
        for b in order.chunks(p.batch) {
            let mut fb = gather(&ftr, f, b);
            let mixed = mix(&mut fb, f, p.mixup, &mut rng);
            let mask = if p.dropout > 0.0 {
                dropout_mask(&mut rng, p.dropout, fb.len())
            } else {
                vec![]
            };
            for (v, m) in fb.iter_mut().zip(&mask) {
                *v *= m;
            }
            let yb: Vec<usize> = b.iter().map(|&i| ytr[i]).collect();
            let (loss, g) = batch_loss(&net, &net.logits(&fb, b.len()), &yb, &mixed);
            sum += loss * b.len() as f64;
            net.zero_grad();
            let tape = crate::net::Tape {
                batch: b.len(),
                values: vec![],
                features: fb,
                mask,
            };
            net.backward(&tape, &g, false);
            head_opt.step(net.head_params());
        }
        let (vl, vacc) = loss_acc(&net, &net.logits(&fva, va.len()), &yva);
        let ep = Epoch {
            phase: "probe".into(),
            epoch: e,
            train_loss: sum / tr.len() as f64,
            val_loss: vl,
            val_accuracy: vacc,
            seconds: t0.elapsed().as_secs_f64(),
        };
        progress(&ep);
        history.push(ep);
    }
    drop(ftr);

    // Phase 2: block and classifier together.
    let score = |net: &Net| -> (f64, f64) {
        let fv = features(net, &xva, per, va.len(), eval_batch);
        loss_acc(net, &net.logits(&fv, va.len()), &yva)
    };
    let mut best = (score(&net), 0usize);
    let mut best_net = net.clone();
    let block_sizes: Vec<usize> = net.block_params().iter().map(|q| q.value.len()).collect();
    let mut block_opt = AdamW::new(&block_sizes, p.lr_block, p.weight_decay);
    let mut head_opt = AdamW::new(&head_sizes, p.lr_head, p.weight_decay);
    let mut since_best = 0;
    for e in 1..=p.max_epochs {
        let t0 = Instant::now();
        let cosine =
            0.5 * (1.0 + (std::f64::consts::PI * (e - 1) as f64 / p.max_epochs as f64).cos());
        block_opt.lr = p.lr_block * cosine;
        head_opt.lr = p.lr_head * cosine;
        order.shuffle(&mut rng);
        let mut sum = 0.0;
        for b in order.chunks(p.batch) {
            let mut xb = gather(&xtr, per, b);
            let mixed = mix(&mut xb, per, p.mixup, &mut rng);
            let mut tape = net.forward_block(xb, b.len(), true);
            if p.dropout > 0.0 {
                tape.mask = dropout_mask(&mut rng, p.dropout, tape.features.len());
                for (v, m) in tape.features.iter_mut().zip(&tape.mask) {
                    *v *= m;
                }
            }
            let yb: Vec<usize> = b.iter().map(|&i| ytr[i]).collect();
            let (loss, g) = batch_loss(&net, &net.logits(&tape.features, b.len()), &yb, &mixed);
            sum += loss * b.len() as f64;
            net.zero_grad();
            net.backward(&tape, &g, p.lr_block > 0.0);
            if p.lr_block > 0.0 {
                block_opt.step(net.block_params());
            }
            head_opt.step(net.head_params());
        }
        let (vl, vacc) = score(&net);
        let ep = Epoch {
            phase: "joint".into(),
            epoch: e,
            train_loss: sum / tr.len() as f64,
            val_loss: vl,
            val_accuracy: vacc,
            seconds: t0.elapsed().as_secs_f64(),
        };
        progress(&ep);
        history.push(ep);
        if vacc > best.0 .1 || (vacc == best.0 .1 && vl < best.0 .0) {
            best = ((vl, vacc), e);
            best_net = net.clone();
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= p.patience {
                break;
            }
        }
    }
    let (block, cls_w, cls_b) = best_net.export()?;
    Ok(Fitted {
        block,
        cls_w,
        cls_b,
        history,
        best_epoch: best.1,
        train_rows: tr.len(),
        val_rows: va.len(),
    })
}

/// Logits `[N, K]` of cut maps `rows` through a fitted block and classifier.
pub fn decision(
    block: &TopBlock,
    cls_w: &Array2<f32>,
    cls_b: &Array1<f32>,
    rows: &[&[f32]],
) -> Result<Array2<f32>> {
    let net = Net::new(block, cls_w, cls_b)?;
    let k = net.classes;
    let mut out = Vec::with_capacity(rows.len() * k);
    for chunk in rows.chunks(256) {
        let t = net.forward_block(rows_to_nhwc(chunk, block.input)?, chunk.len(), false);
        out.extend(net.logits(&t.features, chunk.len()));
    }
    Ok(Array2::from_shape_vec((rows.len(), k), out)?)
}

/// Pooled features `[N, F]` of cut maps through a block (the check against cached codes).
pub fn pooled(block: &TopBlock, rows: &[&[f32]]) -> Result<Array2<f32>> {
    let f = block.features();
    let net = Net::new(block, &Array2::zeros((2, f)), &Array1::zeros(2))?;
    let mut out = Vec::with_capacity(rows.len() * f);
    for chunk in rows.chunks(256) {
        out.extend(
            net.forward_block(rows_to_nhwc(chunk, block.input)?, chunk.len(), false)
                .features,
        );
    }
    Ok(Array2::from_shape_vec((rows.len(), f), out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixup_mixes_rows_with_a_permutation_and_is_off_at_zero() {
        let (b, per) = (6, 4);
        let x: Vec<f32> = (0..b * per).map(|i| i as f32).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut off = x.clone();
        assert!(mix(&mut off, per, 0.0, &mut rng).is_none());
        assert_eq!(off, x);
        let mut y = x.clone();
        let m = mix(&mut y, per, 0.4, &mut rng).unwrap();
        assert!((0.0..=1.0).contains(&m.lambda));
        let mut seen = m.perm.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..b).collect::<Vec<_>>());
        for (i, &j) in m.perm.iter().enumerate() {
            for c in 0..per {
                let want = m.lambda * x[i * per + c] + (1.0 - m.lambda) * x[j * per + c];
                assert!((y[i * per + c] - want).abs() < 1e-5, "row {i} col {c}");
            }
        }
        // Seeded: the same draw again.
        let (mut a, mut b2) = (x.clone(), x.clone());
        let ma = mix(&mut a, per, 0.4, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
        let mb = mix(&mut b2, per, 0.4, &mut ChaCha8Rng::seed_from_u64(9)).unwrap();
        assert_eq!((a, ma.lambda, ma.perm), (b2, mb.lambda, mb.perm));
    }

    /// The mixed loss is the cross-entropy against the mixed one-hot targets, and its gradient
    /// is (softmax - target) / n.
    #[test]
    fn mixed_loss_is_the_cross_entropy_of_mixed_targets() {
        let block = TopBlock {
            backbone: "t".into(),
            sha256: String::new(),
            cut: "c".into(),
            input: [3, 1, 1],
            ops: vec![],
        };
        let k = 4;
        let net = Net::new(&block, &Array2::zeros((k, 3)), &Array1::zeros(k)).unwrap();
        let logits: Vec<f32> = (0..3 * k).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
        let y = [0, 3, 1];
        let m = Mix {
            lambda: 0.3,
            perm: vec![2, 0, 1],
        };
        let (loss, g) = batch_loss(&net, &logits, &y, &Some(m));
        let mut want = 0f64;
        for i in 0..3 {
            let row = &logits[i * k..(i + 1) * k];
            let z: f64 = row.iter().map(|v| (*v as f64).exp()).sum();
            let y2 = y[[2, 0, 1][i]];
            for j in 0..k {
                let p = (row[j] as f64).exp() / z;
                let t = 0.3 * (j == y[i]) as u8 as f64 + 0.7 * (j == y2) as u8 as f64;
                want -= t * p.ln() / 3.0;
                assert!(
                    (g[i * k + j] as f64 - (p - t) / 3.0).abs() < 1e-6,
                    "grad {i} {j}"
                );
            }
        }
        assert!((loss - want).abs() < 1e-6, "{loss} vs {want}");
    }
}
