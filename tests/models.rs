//! Shapes and structure of every backbone (tiny widths), and the heads.

use burn::backend::flex::FlexDevice;
use burn::backend::{Autodiff, Flex};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Distribution, Tensor};
use timebalance::model::video_resnet::r2plus1d_mid_planes;
use timebalance::model::{Arch, BackboneConfig, SslModel, TEMPORAL_SLOTS, VideoClassifier};

type B = Autodiff<Flex>;
const DEVICE: FlexDevice = FlexDevice;

fn clip(frames: usize, size: usize) -> Tensor<B, 5> {
    Tensor::random([2, 3, frames, size, size], Distribution::Default, &DEVICE)
}

#[test]
fn every_backbone_gives_four_slots_and_logits() {
    for (arch, width) in [
        (Arch::R3d18, 8),
        (Arch::R3d18Dilated, 8),
        (Arch::R2plus1d18, 8),
        (Arch::Mc3_18, 8),
        (Arch::SlowR50, 4),
    ] {
        let cfg = BackboneConfig::new(arch, width);
        let backbone = cfg.init::<B>(&DEVICE);
        let f = backbone.features(clip(16, 32));
        assert_eq!(
            f.slots.dims(),
            [2, cfg.feature_dim(), TEMPORAL_SLOTS],
            "{arch:?}"
        );
        assert_eq!(f.pooled.dims(), [2, cfg.feature_dim()], "{arch:?}");
        let model = VideoClassifier::<B>::new(cfg, 7, &DEVICE);
        assert_eq!(model.forward(clip(8, 32)).dims(), [2, 7], "{arch:?}");
    }
}

#[test]
fn temporal_resolution_of_the_last_stage() {
    // 16 frames: R3D-18 halves time in layers 2-4 (16→2); TimeBalance's variant keeps
    // layer4's length (16→4), so its 4 slots are 4 distinct times; slow keeps all 16.
    let t = |arch: Arch, width: usize| {
        BackboneConfig::new(arch, width)
            .init::<B>(&DEVICE)
            .feature_map(clip(16, 32))
            .dims()[2]
    };
    assert_eq!(t(Arch::R3d18, 8), 2);
    assert_eq!(t(Arch::R3d18Dilated, 8), 4);
    assert_eq!(t(Arch::Mc3_18, 8), 16);
    assert_eq!(t(Arch::R2plus1d18, 8), 2);
    assert_eq!(t(Arch::SlowR50, 4), 16);
}

#[test]
fn full_width_parameter_counts_match_torchvision() {
    // torchvision: r3d_18 33,371,472 / r2plus1d_18 31,505,325 / mc3_18 11,695,440
    // parameters with a 400-class head (batch-norm running stats excluded).
    // Burn's `num_params` also counts batch-norm running statistics; count trainable ones.
    struct Trainable(usize);
    impl ModuleVisitor<B> for Trainable {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if param.is_require_grad() {
                self.0 += param.val().shape().num_elements();
            }
        }
    }
    let count = |arch: Arch| {
        let model = VideoClassifier::<B>::new(BackboneConfig::new(arch, 64), 400, &DEVICE);
        let mut visitor = Trainable(0);
        model.visit(&mut visitor);
        visitor.0
    };
    assert_eq!(count(Arch::R3d18), 33_371_472);
    assert_eq!(count(Arch::R2plus1d18), 31_505_325);
    assert_eq!(count(Arch::Mc3_18), 11_695_440);
}

#[test]
fn r2plus1d_mid_width_formula() {
    assert_eq!(r2plus1d_mid_planes(64, 64), 144);
    assert_eq!(r2plus1d_mid_planes(64, 128), 230);
    assert_eq!(r2plus1d_mid_planes(8, 8), 18);
}

#[test]
fn projection_head_embeddings_are_unit_norm() {
    let model = SslModel::<B>::new(BackboneConfig::new(Arch::R3d18Dilated, 8), &DEVICE);
    let e = model.embed_with_slices(clip(16, 32));
    assert_eq!(e.global.dims(), [2, 128]);
    assert_eq!(e.slices.dims(), [2, TEMPORAL_SLOTS, 128]);
    let norms = e.slices.powi_scalar(2).sum_dim(2).sqrt();
    for n in norms.into_data().to_vec::<f32>().unwrap() {
        assert!((n - 1.0).abs() < 1e-4, "norm {n}");
    }
}
