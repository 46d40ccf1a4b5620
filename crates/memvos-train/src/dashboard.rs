//! burn-train's metrics and renderer for the iteration loop: loss, target IoU, learning rate and
//! iterations per second, drawn by burn-train's terminal dashboard (its plain renderer when the
//! output is not a terminal). Pressing `q` in the dashboard stops the run after a checkpoint.

use std::sync::Arc;

use burn::data::dataloader::Progress;
use burn::tensor::{Device, Tensor, TensorData};
use burn::train::metric::state::{FormatOptions, NumericMetricState};
use burn::train::metric::{
    IterationSpeedMetric, LearningRateMetric, LossInput, LossMetric, Metric, MetricAttributes, MetricDefinition, MetricEntry, MetricId, MetricMetadata,
    MetricName, Numeric, NumericAttributes, NumericEntry, SerializedEntry,
};
use burn::train::renderer::{MetricState, MetricsRenderer, default_renderer};
use burn::train::Interrupter;
use burn::tensor::TensorReadError;

use crate::trainer::{IterationStats, Observer};

/// The target's IoU on the segmented frames, as a burn-train numeric metric.
#[derive(Clone)]
pub struct IouMetric {
    name: MetricName,
    state: NumericMetricState,
}

/// The IoU of one iteration.
pub struct IouInput {
    /// The mean IoU of the iteration's predicted masks.
    pub iou: f64,
}

impl Default for IouMetric {
    fn default() -> Self {
        IouMetric { name: Arc::new("IoU".to_string()), state: NumericMetricState::default() }
    }
}

impl Metric for IouMetric {
    type Input = IouInput;

    fn name(&self) -> MetricName {
        self.name.clone()
    }

    fn attributes(&self) -> MetricAttributes {
        NumericAttributes { unit: None, higher_is_better: true }.into()
    }

    fn update(&mut self, item: &IouInput, _metadata: &MetricMetadata) -> Result<SerializedEntry, TensorReadError> {
        self.state.update(item.iou, 1);
        Ok(self.state.compute_update(FormatOptions::new(self.name()).precision(3)))
    }

    fn compute(&mut self) -> Result<SerializedEntry, TensorReadError> {
        Ok(self.state.compute_final(FormatOptions::new(self.name()).precision(3)))
    }

    fn clear(&mut self) {
        self.state.reset()
    }
}

impl Numeric for IouMetric {
    fn value(&self) -> Option<NumericEntry> {
        Some(self.state.current_value())
    }

    fn running_value(&self) -> Option<NumericEntry> {
        Some(self.state.running_value())
    }

    fn final_value(&self) -> NumericEntry {
        self.state.final_value()
    }
}

/// An [`Observer`] that feeds burn-train's metrics and renderer.
pub struct Dashboard {
    renderer: Box<dyn MetricsRenderer>,
    interrupter: Interrupter,
    loss: LossMetric,
    iou: IouMetric,
    lr: LearningRateMetric,
    speed: IterationSpeedMetric,
    ids: [MetricId; 4],
    first: usize,
    total: usize,
}

impl Default for Dashboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Dashboard {
    /// burn-train's default renderer: the terminal dashboard on a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let interrupter = Interrupter::new();
        let mut renderer = default_renderer(interrupter.clone(), None);
        let (loss, iou, lr, speed) = (LossMetric::new(), IouMetric::default(), LearningRateMetric::new(), IterationSpeedMetric::new());
        let ids = [loss.name(), iou.name(), lr.name(), speed.name()].map(MetricId::new);
        renderer.register_metric(MetricDefinition::new(ids[0].clone(), &loss));
        renderer.register_metric(MetricDefinition::new(ids[1].clone(), &iou));
        renderer.register_metric(MetricDefinition::new(ids[2].clone(), &lr));
        renderer.register_metric(MetricDefinition::new(ids[3].clone(), &speed));
        Dashboard { renderer, interrupter, loss, iou, lr, speed, ids, first: 0, total: 0 }
    }

    fn push(&mut self, id: usize, entry: Result<SerializedEntry, TensorReadError>, value: Option<NumericEntry>) {
        if let Ok(e) = entry {
            self.renderer.update_train(MetricState::Numeric(MetricEntry::new(self.ids[id].clone(), e), value));
        }
    }
}

impl Observer for Dashboard {
    fn start(&mut self, first: usize, total: usize) {
        self.first = first;
        self.total = total;
        self.renderer.start(1, 0, Some(total), Some("memvos training"));
        self.renderer.start_split("train", total);
        self.renderer.update_split(first);
    }

    fn iteration(&mut self, s: &IterationStats) {
        let done = s.iteration + 1;
        let meta = MetricMetadata { progress: Progress::new(done, self.total, Some("iterations".into())), iteration: Some(done - self.first), lr: Some(s.lr.into()) };
        let loss = Tensor::<1>::from_data(TensorData::new(vec![s.loss as f32], [1]), &Device::flex());
        let e = self.loss.update(&LossInput::new(loss), &meta);
        let v = self.loss.value();
        self.push(0, e, v);
        let e = self.iou.update(&IouInput { iou: s.iou }, &meta);
        let v = self.iou.value();
        self.push(1, e, v);
        let e = self.lr.update(&(), &meta);
        let v = self.lr.value();
        self.push(2, e, v);
        let e = self.speed.update(&(), &meta);
        let v = self.speed.value();
        self.push(3, e, v);
        self.renderer.update_split(done);
    }

    fn should_stop(&self) -> bool {
        self.interrupter.should_stop()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.renderer.end_split();
        self.renderer.end();
        let _ = self.renderer.on_train_end(None);
    }
}
