//! Burn-side loading: the `Dataset`/`Batcher` pair through the stages' multi-worker
//! `EpochLoader` (Burn's `DataLoader` trait), on real synthetic videos with a corrupt one
//! among them.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::backend::flex::FlexDevice;
use burn::data::dataloader::DataLoader;
use timebalance::data::batch::ClipTensors;
use timebalance::data::clips::ClipRecipe;
use timebalance::data::loader::{EpochLoader, LoaderItem};
use timebalance::data::synth::{SynthConfig, generate};
use timebalance::data::tensors::{ClipBatcher, VideoClipDataset};

const SIZE: u32 = 32;
const BATCH: usize = 3;

fn items(root: &std::path::Path, train: &[PathBuf]) -> Vec<LoaderItem> {
    train
        .iter()
        .enumerate()
        .map(|(i, p)| (root.join(p), Some(i % 4)))
        .collect()
}

#[test]
fn burn_dataloader_yields_full_batches_and_skips_a_corrupt_video() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("synth");
    let summary = generate(&SynthConfig {
        out: root.clone(),
        classes: 4,
        videos_per_class: 2,
        test_videos_per_class: 1,
        frames: 24,
        size: SIZE,
        seed: 1,
        fps: 25,
        ..SynthConfig::default()
    })
    .unwrap();
    let items = items(&root, &summary.train);
    let corrupt = items[2].0.clone();
    std::fs::write(&corrupt, b"not a video").unwrap();

    let recipe = ClipRecipe::train(SIZE, true);
    let dataset = std::sync::Arc::new(VideoClipDataset::new(items.clone(), recipe, 7).unwrap());
    let loader = EpochLoader::<Flex, _, ClipTensors<Flex>>::new(
        ClipBatcher,
        dataset.clone(),
        BATCH,
        2,
        Some(3),
        FlexDevice,
    );
    let batches: Vec<ClipTensors<Flex>> = loader.iter().collect();
    let videos: usize = batches.iter().map(|b| b.videos.len()).sum();
    assert_eq!(
        videos,
        items.len(),
        "every item yields a video (the corrupt one substituted)"
    );
    for b in &batches {
        let [n, clips, c, t, h, w] = b.clips.dims();
        assert_eq!([clips, c, t, h, w], [1, 3, 8, SIZE as usize, SIZE as usize]);
        assert!(n <= BATCH);
        let labels = b
            .labels
            .clone()
            .expect("labeled items")
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap();
        for (v, l) in b.videos.iter().zip(labels) {
            assert_eq!(items[*v].1, Some(l as usize), "label follows its video");
        }
        let data = b.clips.clone().into_data().to_vec::<f32>().unwrap();
        assert!(data.iter().all(|x| (0.0..=1.0).contains(x)));
        assert!(!b.videos.contains(&2), "the corrupt video never appears");
    }
    let skipped = dataset.skipped();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].path, corrupt);
}
