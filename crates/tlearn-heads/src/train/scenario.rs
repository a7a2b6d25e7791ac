//! The CS231n scenario a training run points to, in plain words: a small or large data set
//! (training images per class), similar to ImageNet or not (whether the chosen feature set
//! holds a backbone's bottleneck cut, and only when the paired folds separate it from the best
//! set on the other side: otherwise the cuts are said to be within noise of each other).

pub use crate::train::cv_file::Evidence;
use crate::train::cv_file::Scenario;

/// How many standard errors of the paired per-fold difference separate two cuts. Two, not one:
/// with 5 folds, one standard error is crossed by chance about a fifth of the time, and a
/// scenario named from noise sends the user to the wrong recipe.
pub const SEPARATION_SE: f64 = 2.0;

/// The paired comparison of two sets' per-fold accuracies on the same folds (`None` when the
/// folds do not pair: different lengths, or fewer than two).
pub fn paired(chosen: &[f64], rival: &[f64], rival_name: &str) -> Option<Evidence> {
    let k = chosen.len();
    if k < 2 || rival.len() != k {
        return None;
    }
    let d: Vec<f64> = chosen.iter().zip(rival).map(|(a, b)| a - b).collect();
    let mean = d.iter().sum::<f64>() / k as f64;
    let var = d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    Some(Evidence {
        rival: rival_name.to_string(),
        difference: mean,
        standard_error: (var / k as f64).sqrt(),
    })
}

impl Evidence {
    /// The chosen set beats the rival by more than [`SEPARATION_SE`] standard errors.
    pub fn separates(&self) -> bool {
        self.difference > SEPARATION_SE * self.standard_error && self.difference > 0.0
    }
}

/// Training images per class from which a set counts as large.
pub const LARGE_PER_CLASS: usize = 1000;

/// The plain-words scenario: size from training images per class, similarity from whether the
/// chosen set holds a bottleneck cut.
pub fn scenario(
    training_images: usize,
    classes: usize,
    chosen: Option<(&str, bool)>,
    single_cut: bool,
    evidence: Option<Evidence>,
) -> Scenario {
    let large = training_images >= LARGE_PER_CLASS * classes.max(1);
    let size = if large { "large" } else { "small" };
    let similarity = match chosen {
        _ if single_cut => "not inferred",
        None => "not inferred",
        Some(_) if evidence.as_ref().is_some_and(|e| !e.separates()) => "within noise",
        Some((_, true)) => "similar",
        Some((_, false)) => "different",
    };
    let per_class = training_images as f64 / classes.max(1) as f64;
    let size_words = format!(
        "{size} data set ({training_images} training images, {per_class:.0} per class; large \
         from {LARGE_PER_CLASS} per class)"
    );
    let text = match (large, similarity, chosen) {
        (_, "within noise", Some((c, holds))) => {
            let e = evidence.as_ref().expect("within noise comes from evidence");
            format!(
                "{size_words}; {c} and {} ({}) are within noise of each other (CV difference \
                 {:+.4} ± {:.4} over paired folds, needs more than {SEPARATION_SE} standard \
                 errors), so the data's similarity to ImageNet is not named; {}",
                e.rival,
                if holds {
                    "the best without the bottleneck"
                } else {
                    "the best with the bottleneck"
                },
                e.difference,
                e.standard_error,
                if large {
                    "with this much data CS231n would fine-tune the network (`--finetune-on` lets \
                     CV weigh that)"
                } else {
                    "CS231n's advice for small data is a linear classifier on the bottleneck's \
                     codes (`train --select one-se` prefers the simplest candidate within one \
                     standard error of the best)"
                }
            )
        }
        (_, "not inferred", _) => format!(
            "{size_words}; similarity to ImageNet not inferred ({}): give a cut set (`tlearn \
             extract --layer all`) so CV can compare cuts",
            if single_cut {
                "one cut only"
            } else {
                "the backbone's bottleneck cut is not known"
            }
        ),
        (false, "similar", Some((c, _))) => format!(
            "{size_words}, similar to ImageNet: codes holding the bottleneck ({c}) are best \
             (CS231n: small data, similar data: a linear classifier on the bottleneck's codes)"
        ),
        (false, _, Some((c, _))) => format!(
            "{size_words}, different from ImageNet: codes from earlier in the network ({c}) beat \
             the bottleneck (CS231n: small data, very different data: a classifier on \
             activations from somewhere earlier in the network)"
        ),
        (true, "similar", Some((c, _))) => format!(
            "{size_words}, similar to ImageNet: codes holding the bottleneck ({c}) are best; with this \
             much data CS231n would fine-tune the network (`train --head auto --finetune-on \
             MAPS` lets CV weigh fine-tuning the layers after a cut against this head)"
        ),
        (true, _, Some((c, _))) => format!(
            "{size_words}, different from ImageNet: earlier codes ({c}) beat the bottleneck; \
             with this much data CS231n would fine-tune or train from scratch (`train --head \
             auto --finetune-on MAPS` lets CV weigh fine-tuning the layers after a cut; tlearn \
             does not train from scratch)"
        ),
        _ => size_words,
    };
    Scenario {
        size: size.into(),
        similarity: similarity.into(),
        training_images,
        classes,
        text,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_words_follow_size_and_where_the_best_cut_sits() {
        let s = scenario(150, 10, Some(("features", true)), false, None);
        assert_eq!(
            (s.size.as_str(), s.similarity.as_str()),
            ("small", "similar")
        );
        assert!(s.text.contains("similar to ImageNet"), "{}", s.text);
        let s = scenario(2100, 10, Some(("stage6", false)), false, None);
        assert_eq!(s.similarity, "different");
        assert!(s.text.contains("earlier in the network"), "{}", s.text);
        let s = scenario(50_000, 10, Some(("stage5", false)), false, None);
        assert_eq!(s.size, "large");
        assert!(s.text.contains("fine-tune"), "{}", s.text);
        let s = scenario(150, 10, Some(("features", true)), true, None);
        assert_eq!(s.similarity, "not inferred");
    }

    #[test]
    fn similarity_is_named_only_beyond_noise() {
        // Five folds where the earlier cut wins by a point on some, loses on others: noise.
        let near = paired(
            &[0.80, 0.85, 0.82, 0.90, 0.84],
            &[0.81, 0.83, 0.82, 0.88, 0.85],
            "features",
        )
        .unwrap();
        assert!(!near.separates());
        let s = scenario(150, 10, Some(("stage6", false)), false, Some(near));
        assert_eq!(s.similarity, "within noise");
        assert!(
            s.text.contains("within noise") && s.text.contains("features"),
            "{}",
            s.text
        );
        // A clear, consistent gain on every fold separates.
        let far = paired(
            &[0.90, 0.92, 0.91, 0.93, 0.90],
            &[0.80, 0.83, 0.81, 0.82, 0.80],
            "features",
        )
        .unwrap();
        assert!(far.separates());
        let s = scenario(150, 10, Some(("stage6", false)), false, Some(far));
        assert_eq!(s.similarity, "different");
        // Unpaired folds give no evidence.
        assert!(paired(&[0.9, 0.8], &[0.9], "x").is_none());
    }
}
