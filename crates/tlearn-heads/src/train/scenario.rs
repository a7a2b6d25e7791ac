//! The CS231n scenario a training run points to, in plain words: a small or large data set
//! (training images per class), similar to ImageNet or not (whether the chosen feature set
//! holds a backbone's bottleneck cut).

use crate::train::cv_file::Scenario;

/// Training images per class from which a set counts as large.
pub const LARGE_PER_CLASS: usize = 1000;

/// The plain-words scenario: size from training images per class, similarity from whether the
/// chosen set holds a bottleneck cut.
pub fn scenario(
    training_images: usize,
    classes: usize,
    chosen: Option<(&str, bool)>,
    single_cut: bool,
) -> Scenario {
    let large = training_images >= LARGE_PER_CLASS * classes.max(1);
    let size = if large { "large" } else { "small" };
    let similarity = match chosen {
        _ if single_cut => "not inferred",
        None => "not inferred",
        Some((_, true)) => "similar",
        Some((_, false)) => "different",
    };
    let per_class = training_images as f64 / classes.max(1) as f64;
    let size_words = format!(
        "{size} data set ({training_images} training images, {per_class:.0} per class; large \
         from {LARGE_PER_CLASS} per class)"
    );
    let text = match (large, similarity, chosen) {
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
            "{size_words}, similar to ImageNet: codes holding the bottleneck ({c}) are best, so \
             a linear classifier on them (CS231n: small data, similar data)"
        ),
        (false, _, Some((c, _))) => format!(
            "{size_words}, different from ImageNet: codes from earlier in the network ({c}) beat \
             the bottleneck (CS231n: small data, very different data: a classifier on \
             activations from somewhere earlier in the network)"
        ),
        (true, "similar", Some((c, _))) => format!(
            "{size_words}, similar to ImageNet: codes holding the bottleneck ({c}) are best; with this \
             much data CS231n would fine-tune the network, which tlearn does not do"
        ),
        (true, _, Some((c, _))) => format!(
            "{size_words}, different from ImageNet: earlier codes ({c}) beat the bottleneck; \
             with this much data CS231n would fine-tune or train from scratch, which tlearn \
             does not do"
        ),
        _ => size_words,
    };
    Scenario {
        size: size.into(),
        similarity: similarity.into(),
        training_images,
        classes,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_words_follow_size_and_where_the_best_cut_sits() {
        let s = scenario(150, 10, Some(("features", true)), false);
        assert_eq!(
            (s.size.as_str(), s.similarity.as_str()),
            ("small", "similar")
        );
        assert!(s.text.contains("similar to ImageNet"), "{}", s.text);
        let s = scenario(2100, 10, Some(("stage6", false)), false);
        assert_eq!(s.similarity, "different");
        assert!(s.text.contains("earlier in the network"), "{}", s.text);
        let s = scenario(50_000, 10, Some(("stage5", false)), false);
        assert_eq!(s.size, "large");
        assert!(s.text.contains("fine-tune"), "{}", s.text);
        let s = scenario(150, 10, Some(("features", true)), true);
        assert_eq!(s.similarity, "not inferred");
    }
}
