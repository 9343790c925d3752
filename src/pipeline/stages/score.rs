//! Stage `score`: TSTR, each training video's temporal similarity under both self-supervised
//! teachers (docs/method.md, stage 3), cached in `score/scores.tsv` keyed by video path.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use crate::checkpoint::load_module;
use crate::data::clips::ClipRecipe;
use crate::data::tensors::ClipBatcher;
use crate::disk::Disk;
use crate::model::SslModel;
use crate::pipeline::context::{SCORES_FILE, StageContext, host_values, seed_offset};
use crate::pipeline::stage::Stage;
use crate::pipeline::train_steps::TeacherKind;
use crate::tstr::{self_similarity, temporal_similarity};

/// One training video's temporal similarity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoScore {
    /// Path relative to the data root.
    pub video: String,
    pub label: usize,
    /// s(v): mean of the two teachers' self-similarities.
    pub score: f32,
    pub invariant: f32,
    pub distinctive: f32,
}

/// TSTR: each training video's self-similarity under both self-supervised teachers,
/// written to `score/scores.tsv` keyed by video path.
pub fn score<B: Backend>(ctx: &StageContext<'_>, device: &B::Device) -> Result<usize> {
    let backbone = ctx.config.model.backbone();
    let load = |t: TeacherKind| -> Result<SslModel<B>> {
        let path = ctx.require(Stage::pretrain(t))?;
        load_module(SslModel::<B>::new(backbone, device), &path, device)
    };
    let invariant = load(TeacherKind::Invariant)?;
    let distinctive = load(TeacherKind::Distinctive)?;
    let d = &ctx.config.data;
    let (frames, stride) = ctx.config.tstr.clip_geometry(d);
    let recipe = ClipRecipe::Tstr {
        clips: ctx.config.tstr.clips,
        frames,
        stride,
        out_size: d.size,
    };
    let all: Vec<usize> = (0..ctx.data.train.len()).collect();
    let dataset = ctx.clip_dataset(
        ctx.data.items(&all, true),
        recipe,
        ctx.seed(seed_offset::SCORE),
    )?;
    let loader = ctx.loader(
        ClipBatcher,
        dataset,
        ctx.config.tstr.batch_size,
        None,
        device,
    );
    let mut scores: BTreeMap<usize, VideoScore> = BTreeMap::new();
    let total = ctx.data.train.len();
    for batch in loader.iter() {
        let [b, n, ..] = batch.clips.dims();
        let x = batch.flattened();
        let embed = |m: &SslModel<B>| -> Tensor<B, 3> {
            let z = m.embed(x.clone());
            let dim = z.dims()[1];
            z.reshape([b, n, dim])
        };
        let (z_i, z_d) = (embed(&invariant), embed(&distinctive));
        let s_i = host_values(self_similarity(z_i.clone()), "scores")?;
        let s_d = host_values(self_similarity(z_d.clone()), "scores")?;
        let s = host_values(temporal_similarity(z_i, z_d), "scores")?;
        for (k, &v) in batch.videos.iter().enumerate() {
            let e = &ctx.data.train[v];
            scores.entry(v).or_insert(VideoScore {
                video: ctx.data.key(&e.path),
                label: e.label,
                score: s[k],
                invariant: s_i[k],
                distinctive: s_d[k],
            });
        }
        ctx.log
            .line(&format!("[score] {}/{total} videos", scores.len()));
    }
    let dir = ctx.stage_dir(Stage::Score);
    std::fs::create_dir_all(&dir)?;
    write_scores(ctx.disk, &dir.join(SCORES_FILE), scores.values())?;
    if scores.len() < total {
        ctx.log.line(&format!(
            "[score] {} unreadable videos have no score (the mean score stands in)",
            total - scores.len()
        ));
    }
    Ok(scores.len())
}

const SCORES_HEADER: &str = "video\tlabel\tscore\tinvariant\tdistinctive";

fn write_scores<'a>(
    disk: &Disk,
    path: &Path,
    scores: impl Iterator<Item = &'a VideoScore>,
) -> Result<()> {
    let mut text = format!("{SCORES_HEADER}\n");
    for s in scores {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            s.video, s.label, s.score, s.invariant, s.distinctive
        ));
    }
    disk.write_atomic(path, text.as_bytes())
}

/// Read the score cache written by [`score`].
pub fn read_scores(path: &Path) -> Result<Vec<VideoScore>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || anyhow::anyhow!("{}:{}: expected `{SCORES_HEADER}`", path.display(), n + 1);
        if f.len() != 5 {
            return Err(bad());
        }
        out.push(VideoScore {
            video: f[0].to_string(),
            label: f[1].parse().map_err(|_| bad())?,
            score: f[2].parse().map_err(|_| bad())?,
            invariant: f[3].parse().map_err(|_| bad())?,
            distinctive: f[4].parse().map_err(|_| bad())?,
        });
    }
    Ok(out)
}
