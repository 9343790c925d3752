//! Accuracy figures from per-video class probabilities (already averaged over views):
//! top-1, top-5, mean class accuracy, confusion matrix, per-class accuracy; and the AUROC
//! with which a score separates two families of videos.

use serde::{Deserialize, Serialize};

use crate::data::synth::Family;

/// The `k` of top-k accuracy reported beside top-1.
pub const TOP_K: usize = 5;

/// Accuracy of one model on the test split. Percentages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub top1: f64,
    pub top5: f64,
    pub mean_class_acc: f64,
    /// Test videos evaluated.
    pub videos: usize,
    /// Per class (label order); `None` for a class without test videos.
    pub per_class: Vec<Option<f64>>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Index of the largest value (first on ties).
pub fn argmax(p: &[f32]) -> usize {
    p.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        })
        .0
}

/// Whether `label` is among the `k` highest of `p` (ties broken towards lower indices,
/// as a stable sort would).
fn in_top_k(p: &[f32], label: usize, k: usize) -> bool {
    let target = p[label];
    let better = p
        .iter()
        .enumerate()
        .filter(|&(i, &v)| v > target || (v == target && i < label))
        .count();
    better < k
}

/// The indices of the `k` largest values of `p`, largest first (ties towards lower indices,
/// as the top-5 accuracy ranks them).
pub fn top_k(p: &[f32], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..p.len()).collect();
    // Stable: equal values keep their index order.
    order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    order.truncate(k);
    order
}

/// Accuracy figures for `probabilities[v]` (one row per video, `classes` wide) against
/// `labels[v]`.
pub fn accuracy(probabilities: &[Vec<f32>], labels: &[usize], classes: usize) -> Accuracy {
    assert_eq!(probabilities.len(), labels.len(), "one label per video");
    let n = labels.len();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut top1 = 0usize;
    let mut topk = 0usize;
    for (p, &y) in probabilities.iter().zip(labels) {
        let predicted = argmax(p);
        confusion[y][predicted] += 1;
        top1 += usize::from(predicted == y);
        topk += usize::from(in_top_k(p, y, TOP_K));
    }
    let per_class: Vec<Option<f64>> = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| {
            let total: usize = row.iter().sum();
            (total > 0).then(|| 100.0 * row[c] as f64 / total as f64)
        })
        .collect();
    let present: Vec<f64> = per_class.iter().flatten().copied().collect();
    let mean_class_acc = if present.is_empty() {
        0.0
    } else {
        present.iter().sum::<f64>() / present.len() as f64
    };
    let pct = |k: usize| {
        if n == 0 {
            0.0
        } else {
            100.0 * k as f64 / n as f64
        }
    };
    Accuracy {
        top1: pct(top1),
        top5: pct(topk),
        mean_class_acc,
        videos: n,
        per_class,
        confusion,
    }
}

/// Mean of the per-class accuracies of each family, percent (`None` for a family without
/// classes that have test videos): the view in which each teacher's strength shows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FamilyAccuracy {
    pub invariant: Option<f64>,
    pub distinctive: Option<f64>,
}

impl FamilyAccuracy {
    /// From per-class accuracies (label order) and each class's family.
    pub fn of(per_class: &[Option<f64>], families: &[Family]) -> Self {
        let mean = |f: Family| -> Option<f64> {
            let v: Vec<f64> = per_class
                .iter()
                .zip(families)
                .filter(|(_, g)| **g == f)
                .filter_map(|(a, _)| *a)
                .collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        Self {
            invariant: mean(Family::Invariant),
            distinctive: mean(Family::Distinctive),
        }
    }
}

/// Probability that a random positive scores higher than a random negative (ties count
/// half): the area under the ROC curve. `None` when either group is empty.
pub fn auroc(positives: &[f32], negatives: &[f32]) -> Option<f64> {
    if positives.is_empty() || negatives.is_empty() {
        return None;
    }
    let wins: f64 = positives
        .iter()
        .map(|&p| {
            negatives
                .iter()
                .map(|&n| match p.partial_cmp(&n) {
                    Some(std::cmp::Ordering::Greater) => 1.0,
                    Some(std::cmp::Ordering::Equal) => 0.5,
                    _ => 0.0,
                })
                .sum::<f64>()
        })
        .sum();
    Some(wins / (positives.len() * negatives.len()) as f64)
}

/// Mean and standard error of the mean of `values` (0 error for fewer than 2 values).
pub fn mean_and_sem(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_figures_by_hand() {
        // 3 classes; video 0 right, video 1 wrong (label 2 ranked second), video 2 right.
        let p = vec![
            vec![0.7, 0.2, 0.1],
            vec![0.5, 0.1, 0.4],
            vec![0.1, 0.8, 0.1],
        ];
        let labels = [0, 2, 1];
        let a = accuracy(&p, &labels, 3);
        assert!((a.top1 - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(a.top5, 100.0);
        assert_eq!(a.per_class, vec![Some(100.0), Some(100.0), Some(0.0)]);
        assert!((a.mean_class_acc - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(a.confusion[2][0], 1);
        assert_eq!(a.confusion.iter().flatten().sum::<usize>(), 3);
    }

    #[test]
    fn top_k_ranks_largest_first_and_agrees_with_argmax() {
        let p = [0.1, 0.4, 0.05, 0.4, 0.05];
        assert_eq!(top_k(&p, 3), vec![1, 3, 0]);
        assert_eq!(top_k(&p, 9), vec![1, 3, 0, 2, 4]);
        assert_eq!(top_k(&p, 1)[0], argmax(&p));
    }

    #[test]
    fn top_k_counts_rank_not_value() {
        let p: Vec<f32> = (0..8).map(|i| i as f32).collect();
        assert!(in_top_k(&p, 7, 5));
        assert!(in_top_k(&p, 3, 5));
        assert!(!in_top_k(&p, 2, 5));
    }

    #[test]
    fn auroc_extremes_and_ties() {
        assert_eq!(auroc(&[0.9, 0.8], &[0.1, 0.2]), Some(1.0));
        assert_eq!(auroc(&[0.1], &[0.9]), Some(0.0));
        assert_eq!(auroc(&[0.5], &[0.5]), Some(0.5));
        assert_eq!(auroc(&[], &[0.5]), None);
    }

    #[test]
    fn sem_of_known_values() {
        let (m, s) = mean_and_sem(&[1.0, 2.0, 3.0]);
        assert_eq!(m, 2.0);
        assert!((s - (1.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn family_accuracy_averages_each_familys_classes() {
        let f = [
            Family::Invariant,
            Family::Invariant,
            Family::Distinctive,
            Family::Distinctive,
        ];
        let a = FamilyAccuracy::of(&[Some(100.0), Some(50.0), None, Some(20.0)], &f);
        assert_eq!(a.invariant, Some(75.0));
        assert_eq!(a.distinctive, Some(20.0));
        let none = FamilyAccuracy::of(&[Some(1.0), Some(1.0), None, None], &f);
        assert_eq!(none.distinctive, None);
    }
}
