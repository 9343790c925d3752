//! burn-train training steps: the self-supervised teacher step, the supervised classifier
//! step (fine-tuning and baseline), and the student step with two frozen teachers.

use burn::module::{AutodiffModule, Module};
use burn::tensor::activation::softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use serde::{Deserialize, Serialize};

use super::train_metrics::StepOutput;
use crate::data::batch::ClipTensors;
use crate::data::sampling::{SSL_CLIPS, SSL_CLIPS_PER_VIEW, SSL_VIEWS};
use crate::loss::{
    DistillKind, SslEmbeddings, StudentWeights, TeacherLoss, cross_entropy, distinctive_loss,
    invariant_loss, student_loss,
};
use crate::model::{SslModel, VideoClassifier};
use crate::tstr::teacher_target;

/// Which self-supervised objective a teacher learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeacherKind {
    /// Same video at different times → same embedding.
    Invariant,
    /// Different times of a video → different embeddings.
    Distinctive,
}

impl TeacherKind {
    pub const BOTH: [TeacherKind; 2] = [TeacherKind::Invariant, TeacherKind::Distinctive];

    pub fn name(self) -> &'static str {
        match self {
            TeacherKind::Invariant => "invariant",
            TeacherKind::Distinctive => "distinctive",
        }
    }

    /// Names of the two loss terms, as reported per epoch.
    pub fn components(self) -> &'static [&'static str] {
        match self {
            TeacherKind::Invariant => &["global", "dense"],
            TeacherKind::Distinctive => &["local_local", "global_local"],
        }
    }
}

/// The objective of a teacher: kind and temperature.
#[derive(Debug, Clone, Copy)]
pub struct SslObjective {
    pub teacher: TeacherKind,
    pub tau: f64,
}

/// A self-supervised model with its objective, as burn-train trains it.
#[derive(Module, Debug)]
pub struct SslTrainer<B: Backend> {
    pub model: SslModel<B>,
    #[module(skip)]
    pub objective: SslObjective,
}

impl<B: Backend> SslTrainer<B> {
    /// The official release's forward passes: one backbone pass per clip and view (so
    /// positives never share batch-norm statistics), the projection head on each sparse
    /// clip's slot mean and, separately, on each of its slots
    /// ([`SslModel::embed_with_slices`]), and on each dense clip's slot mean
    /// ([`SslModel::embed`]) — the functions the golden tests check — then the teacher's loss.
    pub fn loss(&self, batch: &ClipTensors<B>) -> TeacherLoss<B> {
        let n = batch.clips.dims()[1];
        assert_eq!(
            n, SSL_CLIPS,
            "self-supervised batches hold {SSL_CLIPS} clips per video"
        );
        let model = &self.model;
        let views: [_; SSL_VIEWS] = std::array::from_fn(|v| {
            let first = v * SSL_CLIPS_PER_VIEW;
            let sparse = model.embed_with_slices(batch.clip(first));
            let dense: Vec<Tensor<B, 2>> = (first + 1..first + SSL_CLIPS_PER_VIEW)
                .map(|k| model.embed(batch.clip(k)))
                .collect();
            (sparse, Tensor::stack::<3>(dense, 1))
        });
        let [(s0, d0), (s1, d1)] = views;
        let embeddings = SslEmbeddings {
            sparse_global: [s0.global, s1.global],
            sparse_slices: [s0.slices, s1.slices],
            dense: [d0, d1],
        };
        match self.objective.teacher {
            TeacherKind::Invariant => invariant_loss(&embeddings, self.objective.tau),
            TeacherKind::Distinctive => distinctive_loss(&embeddings, self.objective.tau),
        }
    }

    fn output(&self, batch: &ClipTensors<B>) -> StepOutput<B> {
        let loss = self.loss(batch);
        let [first, second] = self.objective.teacher.components() else {
            unreachable!("two loss terms per teacher")
        };
        let [b, n, ..] = batch.clips.dims();
        StepOutput {
            total: loss.total,
            components: vec![(*first, loss.first), (*second, loss.second)],
            predictions: None,
            videos: b,
            clips: b * n,
        }
    }
}

impl<B: AutodiffBackend> TrainStep for SslTrainer<B> {
    type Input = ClipTensors<B>;
    type Output = StepOutput<B>;

    fn step(&self, batch: ClipTensors<B>) -> TrainOutput<StepOutput<B>> {
        let out = self.output(&batch);
        let grads = out.total.backward();
        TrainOutput::new(self, grads, out)
    }
}

impl<B: Backend> InferenceStep for SslTrainer<B> {
    type Input = ClipTensors<B>;
    type Output = StepOutput<B>;

    fn step(&self, batch: ClipTensors<B>) -> StepOutput<B> {
        self.output(&batch)
    }
}

/// Cross-entropy on one clip per labeled video.
fn classifier_output<B: Backend>(
    model: &VideoClassifier<B>,
    batch: &ClipTensors<B>,
) -> StepOutput<B> {
    let labels = batch
        .labels
        .clone()
        .expect("supervised batches hold labeled videos only");
    let b = batch.clips.dims()[0];
    let logits = model.forward(batch.clip(0));
    let loss = cross_entropy(logits.clone(), labels.clone());
    StepOutput {
        total: loss,
        components: Vec::new(),
        predictions: Some((logits, labels)),
        videos: b,
        clips: b,
    }
}

impl<B: AutodiffBackend> TrainStep for VideoClassifier<B> {
    type Input = ClipTensors<B>;
    type Output = StepOutput<B>;

    fn step(&self, batch: ClipTensors<B>) -> TrainOutput<StepOutput<B>> {
        let out = classifier_output(self, &batch);
        let grads = out.total.backward();
        TrainOutput::new(self, grads, out)
    }
}

impl<B: Backend> InferenceStep for VideoClassifier<B> {
    type Input = ClipTensors<B>;
    type Output = StepOutput<B>;

    fn step(&self, batch: ClipTensors<B>) -> StepOutput<B> {
        classifier_output(self, &batch)
    }
}

/// A labeled and an unlabeled batch with each video's invariant-teacher weight w(v).
#[derive(Debug, Clone)]
pub struct PairedBatch<B: Backend> {
    pub labeled: ClipTensors<B>,
    pub unlabeled: ClipTensors<B>,
    pub weight_labeled: Tensor<B, 1>,
    pub weight_unlabeled: Tensor<B, 1>,
}

/// Loss settings of the student.
#[derive(Debug, Clone, Copy)]
pub struct StudentSettings {
    pub weights: StudentWeights,
    pub distill: DistillKind,
}

/// The student with its two fine-tuned teachers. Only the student receives gradients: the
/// teachers run as `valid()` modules on the inner backend (eval-mode batch norm, no graph),
/// so the optimizer never sees a gradient for them and their weights stay as loaded.
#[derive(Module, Debug)]
pub struct StudentTrainer<B: Backend> {
    pub student: VideoClassifier<B>,
    pub invariant: VideoClassifier<B>,
    pub distinctive: VideoClassifier<B>,
    #[module(skip)]
    pub settings: StudentSettings,
}

/// p_T = w·softmax(f_I(x)) + (1−w)·softmax(f_D(x)) from teachers without autodiff.
fn teacher_probabilities<B: Backend>(
    invariant: &VideoClassifier<B>,
    distinctive: &VideoClassifier<B>,
    x: Tensor<B, 5>,
    w: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let p_i = softmax(invariant.forward(x.clone()), 1);
    let p_d = softmax(distinctive.forward(x), 1);
    teacher_target(w, p_i, p_d)
}

fn student_output<B: Backend>(
    student: &VideoClassifier<B>,
    targets: (Tensor<B, 2>, Tensor<B, 2>),
    (x_l, x_u): (Tensor<B, 5>, Tensor<B, 5>),
    batch: &PairedBatch<B>,
    settings: StudentSettings,
) -> StepOutput<B> {
    let labels: Tensor<B, 1, Int> = batch
        .labeled
        .labels
        .clone()
        .expect("the labeled batch holds labels");
    let b_l = x_l.dims()[0];
    let b_u = x_u.dims()[0];
    // Two passes, as the official release: each batch normalised by its own statistics.
    let logits_l = student.forward(x_l);
    let logits_u = student.forward(x_u);
    let loss = student_loss(
        logits_l.clone(),
        labels.clone(),
        targets.0,
        logits_u,
        targets.1,
        settings.weights,
        settings.distill,
    );
    StepOutput {
        total: loss.total,
        components: vec![
            ("ce", loss.ce),
            ("distill_labeled", loss.distill_labeled),
            ("distill_unlabeled", loss.distill_unlabeled),
        ],
        predictions: Some((logits_l, labels)),
        videos: b_l,
        clips: b_l + b_u,
    }
}

impl<B: AutodiffBackend> TrainStep for StudentTrainer<B> {
    type Input = PairedBatch<B>;
    type Output = StepOutput<B>;

    fn step(&self, batch: PairedBatch<B>) -> TrainOutput<StepOutput<B>> {
        let (x_l, x_u) = (batch.labeled.clip(0), batch.unlabeled.clip(0));
        let invariant = self.invariant.valid();
        let distinctive = self.distinctive.valid();
        let target = |x: Tensor<B, 5>, w: Tensor<B, 1>| {
            Tensor::from_inner(teacher_probabilities(
                &invariant,
                &distinctive,
                x.inner(),
                w.inner(),
            ))
        };
        let targets = (
            target(x_l.clone(), batch.weight_labeled.clone()),
            target(x_u.clone(), batch.weight_unlabeled.clone()),
        );
        let out = student_output(&self.student, targets, (x_l, x_u), &batch, self.settings);
        let grads = out.total.backward();
        TrainOutput::new(self, grads, out)
    }
}

impl<B: Backend> InferenceStep for StudentTrainer<B> {
    type Input = PairedBatch<B>;
    type Output = StepOutput<B>;

    fn step(&self, batch: PairedBatch<B>) -> StepOutput<B> {
        let (x_l, x_u) = (batch.labeled.clip(0), batch.unlabeled.clip(0));
        let target = |x: Tensor<B, 5>, w: Tensor<B, 1>| {
            teacher_probabilities(&self.invariant, &self.distinctive, x, w)
        };
        let targets = (
            target(x_l.clone(), batch.weight_labeled.clone()),
            target(x_u.clone(), batch.weight_unlabeled.clone()),
        );
        student_output(&self.student, targets, (x_l, x_u), &batch, self.settings)
    }
}
