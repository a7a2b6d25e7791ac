//! Training the network of `net` on cached cut maps: a linear probe first (the new classifier
//! on the pretrained block's pooled features, the block frozen), then the block and the
//! classifier together with AdamW (a low learning rate for the pretrained layers, a higher one
//! for the classifier, decoupled weight decay, cosine decay over the epochs), mini-batches,
//! dropout before the classifier, and early stopping on an inner validation split (stratified,
//! grouped by content hash like every split of the tool): the weights of the epoch with the
//! best validation accuracy (ties: lower loss) are kept.
//!
//! Seeded and deterministic: the inner split, the batch order and the dropout masks come from
//! one ChaCha stream; the matrix products and the depthwise passes give the same sums run after
//! run.

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
            let mask = if p.dropout > 0.0 {
                dropout_mask(&mut rng, p.dropout, fb.len())
            } else {
                vec![]
            };
            for (v, m) in fb.iter_mut().zip(&mask) {
                *v *= m;
            }
            let yb: Vec<usize> = b.iter().map(|&i| ytr[i]).collect();
            let (loss, g) = net.loss(&net.logits(&fb, b.len()), &yb);
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
            let mut tape = net.forward_block(gather(&xtr, per, b), b.len(), true);
            if p.dropout > 0.0 {
                tape.mask = dropout_mask(&mut rng, p.dropout, tape.features.len());
                for (v, m) in tape.features.iter_mut().zip(&tape.mask) {
                    *v *= m;
                }
            }
            let yb: Vec<usize> = b.iter().map(|&i| ytr[i]).collect();
            let (loss, g) = net.loss(&net.logits(&tape.features, b.len()), &yb);
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
