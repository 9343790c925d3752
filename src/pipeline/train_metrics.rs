//! What a training step reports to burn-train, and the metrics that read it: the total loss,
//! each named loss component, accuracy where labels exist, and clips per second.

use std::sync::Arc;
use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    Adaptor, ItemLazy, Metric, MetricAttributes, MetricMetadata, MetricName, Numeric,
    NumericAttributes, NumericEntry, SerializedEntry,
};

/// Digits shown for metric values.
const PRECISION: usize = 4;

/// A step's output on the device: scalars stay tensors until burn-train syncs them, so the
/// step itself never waits for the device.
pub struct StepOutput<B: Backend> {
    /// The optimised loss.
    pub total: Tensor<B, 1>,
    /// Named loss components (each a one-element tensor).
    pub components: Vec<(&'static str, Tensor<B, 1>)>,
    /// Logits and labels, when the step has labels.
    pub predictions: Option<(Tensor<B, 2>, Tensor<B, 1, Int>)>,
    /// Videos in the batch (weights the running means).
    pub videos: usize,
    /// Clips the model saw (for throughput).
    pub clips: usize,
}

/// [`StepOutput`] read back to the host.
#[derive(Debug, Clone, Default)]
pub struct StepStats {
    pub total: f64,
    pub components: Vec<(&'static str, f64)>,
    /// Fraction of correct top-1 predictions, in percent.
    pub accuracy: Option<f64>,
    pub videos: usize,
    pub clips: usize,
}

impl<B: Backend> ItemLazy for StepOutput<B> {
    type ItemSync = StepStats;

    fn sync(self) -> StepStats {
        let mut scalars = vec![self.total.reshape([1])];
        scalars.extend(self.components.iter().map(|(_, t)| t.clone().reshape([1])));
        if let Some((logits, labels)) = &self.predictions {
            let n = labels.dims()[0];
            // Compared as floats: backends may hold the labels and argmax in different
            // integer types.
            let predicted = logits.clone().argmax(1).reshape([n]).float();
            let correct = predicted.equal(labels.clone().float()).float().sum();
            scalars.push(correct.reshape([1]));
        }
        let values: Vec<f64> = Tensor::cat(scalars, 0)
            .into_data()
            .convert::<f64>()
            .to_vec()
            .unwrap_or_default();
        let k = self.components.len();
        let accuracy = self
            .predictions
            .as_ref()
            .and_then(|_| values.get(k + 1))
            .map(|c| 100.0 * c / self.videos.max(1) as f64);
        StepStats {
            total: values.first().copied().unwrap_or(f64::NAN),
            components: self
                .components
                .iter()
                .zip(values.iter().skip(1))
                .map(|((n, _), v)| (*n, *v))
                .collect(),
            accuracy,
            videos: self.videos,
            clips: self.clips,
        }
    }
}

impl Adaptor<StepStats> for StepStats {
    fn adapt(&self) -> StepStats {
        self.clone()
    }
}

/// Which number of [`StepStats`] a [`StatMetric`] shows.
#[derive(Debug, Clone, Copy)]
enum Pick {
    Total,
    Component(&'static str),
    Accuracy,
}

/// A running mean (weighted by videos) of one number of the step.
#[derive(Clone)]
pub struct StatMetric {
    name: MetricName,
    pick: Pick,
    state: NumericMetricState,
}

impl StatMetric {
    fn new(name: &str, pick: Pick) -> Self {
        Self {
            name: Arc::new(name.to_string()),
            pick,
            state: NumericMetricState::new(),
        }
    }

    /// The optimised loss, named "Loss" as burn-train's own metric.
    pub fn total() -> Self {
        Self::new("Loss", Pick::Total)
    }

    /// A named loss component.
    pub fn component(name: &'static str) -> Self {
        Self::new(name, Pick::Component(name))
    }

    /// Top-1 accuracy on the step's labeled videos, percent.
    pub fn accuracy() -> Self {
        Self::new("Accuracy", Pick::Accuracy)
    }
}

impl Metric for StatMetric {
    type Input = StepStats;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, item: &StepStats, _metadata: &MetricMetadata) -> SerializedEntry {
        let value = match self.pick {
            Pick::Total => Some(item.total),
            Pick::Component(n) => item
                .components
                .iter()
                .find_map(|(c, v)| (*c == n).then_some(*v)),
            Pick::Accuracy => item.accuracy,
        }
        .unwrap_or(f64::NAN);
        let format = FormatOptions::new(self.name.clone()).precision(PRECISION);
        self.state.update(value, item.videos.max(1), format)
    }

    fn clear(&mut self) {
        self.state.reset();
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: matches!(self.pick, Pick::Accuracy).then(|| "%".to_string()),
            higher_is_better: matches!(self.pick, Pick::Accuracy),
        }
        .into()
    }
}

impl Numeric for StatMetric {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}

/// Clips per second between consecutive steps (data loading included), running mean over
/// the epoch; the first step of an epoch is timed from the metric's creation or reset.
#[derive(Clone)]
pub struct ThroughputMetric {
    name: MetricName,
    state: NumericMetricState,
    last: Option<Instant>,
}

impl ThroughputMetric {
    pub fn new() -> Self {
        Self {
            name: Arc::new("ClipsPerSecond".to_string()),
            state: NumericMetricState::new(),
            last: Some(Instant::now()),
        }
    }
}

impl Default for ThroughputMetric {
    fn default() -> Self {
        Self::new()
    }
}

impl Metric for ThroughputMetric {
    type Input = StepStats;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn update(&mut self, item: &StepStats, _metadata: &MetricMetadata) -> SerializedEntry {
        let now = Instant::now();
        let rate = self
            .last
            .map(|t| item.clips as f64 / now.duration_since(t).as_secs_f64().max(1e-9))
            .unwrap_or(0.0);
        self.last = Some(now);
        let format = FormatOptions::new(self.name.clone()).precision(1);
        self.state.update(rate, 1, format)
    }

    fn clear(&mut self) {
        self.state.reset();
        self.last = Some(Instant::now());
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes {
            unit: Some("clips/s".to_string()),
            higher_is_better: true,
        }
        .into()
    }
}

impl Numeric for ThroughputMetric {
    fn value(&self) -> NumericEntry {
        self.state.current_value()
    }

    fn running_value(&self) -> NumericEntry {
        self.state.running_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    #[test]
    fn sync_reads_components_and_accuracy() {
        let device = Default::default();
        let logits = Tensor::<Flex, 2>::from_data(
            TensorData::new(vec![2.0f32, 1.0, 0.0, 3.0, 0.5, 0.1], [3, 2]),
            &device,
        );
        let labels =
            Tensor::<Flex, 1, Int>::from_data(TensorData::new(vec![0i64, 1, 1], [3]), &device);
        let scalar = |v: f32| Tensor::<Flex, 1>::from_data(TensorData::new(vec![v], [1]), &device);
        let out = StepOutput {
            total: scalar(1.5),
            components: vec![("a", scalar(0.5)), ("b", scalar(1.0))],
            predictions: Some((logits, labels)),
            videos: 3,
            clips: 6,
        };
        let s = out.sync();
        assert_eq!(s.total, 1.5);
        assert_eq!(s.components, vec![("a", 0.5), ("b", 1.0)]);
        // Predictions 0, 1, 0 against labels 0, 1, 1.
        let acc = s.accuracy.unwrap();
        assert!((acc - 200.0 / 3.0).abs() < 1e-9, "{acc}");
    }
}
