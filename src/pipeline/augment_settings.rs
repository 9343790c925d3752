//! The experiment file's augmentation sections, `[data.train_augment]` (fine-tuning, student,
//! baseline clips) and `[data.ssl_augment]` (self-supervised clips): every strength of
//! `data::augment`'s recipes exposed as a key, each defaulting to the recipe's value
//! (docs/method.md: the release's values for 240×320 videos).
//!
//! Why every key: frames of a few dozen pixels need other values than the paper's (a crop of
//! 0.4 of a 32² frame cuts a 5 px object out of most clips; random erasing can hide it
//! entirely), and an experiment must be able to say so in its file, not in code.
//!
//! One struct serves both sections; a marker type picks the defaults, so that a section that
//! names one key keeps the right recipe's values for the others, and the resolved
//! `config.toml` of a run lists every value that was used.

use std::fmt::Debug;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::data::augment::{AugmentConfig, CropPolicy, UniformRange};

/// Which recipe's values a section defaults to.
pub trait RecipeDefaults: Debug + Clone + Copy + PartialEq + Default {
    /// The recipe.
    fn recipe() -> AugmentConfig;
}

/// docs/method.md's fine-tuning recipe ([`AugmentConfig::finetune`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FinetuneRecipe;

impl RecipeDefaults for FinetuneRecipe {
    fn recipe() -> AugmentConfig {
        AugmentConfig::finetune()
    }
}

/// docs/method.md's self-supervised recipe ([`AugmentConfig::ssl`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SslRecipe;

impl RecipeDefaults for SslRecipe {
    fn recipe() -> AugmentConfig {
        AugmentConfig::ssl()
    }
}

/// Shape of the random crop window (always resized to the square output).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CropAspect {
    /// `f·W × f·H`: the source's aspect ratio, squashed by the resize (the release's crop).
    Source,
    /// A square of side `f · min(W, H)`: no squashing.
    Square,
}

/// One augmentation section; ranges are `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, bound = "")]
pub struct AugmentSettings<R: RecipeDefaults> {
    /// `false`: the whole frame resized and nothing random (overfit checks; the PyTorch
    /// twin's `--augment none`).
    pub enabled: bool,
    /// Range of the crop's side as a fraction of the frame's side.
    pub crop_scale: [f32; 2],
    /// Shape of the crop window.
    pub crop_aspect: CropAspect,
    /// Probability of a horizontal flip, where `data.hflip` allows flips at all.
    pub hflip_prob: f32,
    /// Probability of each colour-jitter component (brightness, contrast, saturation, hue).
    pub jitter_prob: f32,
    /// Brightness factor range.
    pub brightness: [f32; 2],
    /// Contrast factor range.
    pub contrast: [f32; 2],
    /// Saturation factor range.
    pub saturation: [f32; 2],
    /// Largest hue shift, in turns (0 – 0.5).
    pub hue: f32,
    /// Probability of a grayscale clip.
    pub grayscale_prob: f32,
    /// Probability, given grayscale, of a gamma adjustment.
    pub gamma_prob: f32,
    /// Gamma range.
    pub gamma: [f32; 2],
    /// Probability of zeroing one colour channel (exclusive with grayscale).
    pub channel_drop_prob: f32,
    /// Probability of erasing each box.
    pub erase_prob: f32,
    /// Boxes drawn per clip.
    pub erase_count: usize,
    /// Erase-box side range, as a fraction of the output side.
    pub erase_side: [f32; 2],
    #[serde(skip)]
    recipe: PhantomData<R>,
}

/// `[data.train_augment]`.
pub type TrainAugment = AugmentSettings<FinetuneRecipe>;
/// `[data.ssl_augment]`.
pub type SslAugment = AugmentSettings<SslRecipe>;

fn pair(r: UniformRange) -> [f32; 2] {
    [r.min, r.max]
}

fn range([min, max]: [f32; 2]) -> UniformRange {
    UniformRange { min, max }
}

impl<R: RecipeDefaults> Default for AugmentSettings<R> {
    fn default() -> Self {
        let c = R::recipe();
        let (crop_scale, crop_aspect) = match c.crop {
            CropPolicy::RandomScaled(r) => (pair(r), CropAspect::Source),
            CropPolicy::RandomSquare(r) => (pair(r), CropAspect::Square),
            CropPolicy::CenterScaled(f) => ([f, f], CropAspect::Source),
            CropPolicy::Center(f) => ([f, f], CropAspect::Square),
        };
        Self {
            enabled: true,
            crop_scale,
            crop_aspect,
            hflip_prob: c.hflip_prob,
            jitter_prob: c.jitter_prob,
            brightness: pair(c.brightness),
            contrast: pair(c.contrast),
            saturation: pair(c.saturation),
            hue: c.hue,
            grayscale_prob: c.grayscale_prob,
            gamma_prob: c.gamma_prob,
            gamma: pair(c.gamma),
            channel_drop_prob: c.channel_drop_prob,
            erase_prob: c.erase_prob,
            erase_count: c.erase_count,
            erase_side: pair(c.erase_side),
            recipe: PhantomData,
        }
    }
}

impl<R: RecipeDefaults> AugmentSettings<R> {
    /// The renderer's settings; flips only where `hflip` (the dataset) allows them.
    /// Validation is the renderer's ([`AugmentConfig::validate`]), run once per recipe.
    pub fn config(&self, hflip: bool) -> AugmentConfig {
        if !self.enabled {
            return AugmentConfig::plain();
        }
        let scale = range(self.crop_scale);
        AugmentConfig {
            crop: match self.crop_aspect {
                CropAspect::Source => CropPolicy::RandomScaled(scale),
                CropAspect::Square => CropPolicy::RandomSquare(scale),
            },
            hflip,
            hflip_prob: self.hflip_prob,
            jitter_prob: self.jitter_prob,
            brightness: range(self.brightness),
            contrast: range(self.contrast),
            saturation: range(self.saturation),
            hue: self.hue,
            grayscale_prob: self.grayscale_prob,
            gamma_prob: self.gamma_prob,
            gamma: range(self.gamma),
            channel_drop_prob: self.channel_drop_prob,
            erase_prob: self.erase_prob,
            erase_count: self.erase_count,
            erase_side: range(self.erase_side),
            ..R::recipe()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_reproduce_the_recipes() {
        assert_eq!(
            TrainAugment::default().config(true),
            AugmentConfig::finetune()
        );
        assert_eq!(SslAugment::default().config(true), AugmentConfig::ssl());
        assert_eq!(
            SslAugment::default().config(false),
            AugmentConfig::ssl().with_hflip(false)
        );
        let off = TrainAugment {
            enabled: false,
            ..TrainAugment::default()
        };
        assert_eq!(off.config(true), AugmentConfig::plain());
    }

    #[test]
    fn a_partial_section_keeps_its_recipe_for_the_other_keys() {
        let s: SslAugment = toml::from_str("erase_prob = 0.0\ncrop_aspect = \"square\"").unwrap();
        let c = s.config(true);
        assert_eq!(c.erase_prob, 0.0);
        assert!(matches!(c.crop, CropPolicy::RandomSquare(_)));
        assert_eq!(c.grayscale_prob, AugmentConfig::ssl().grayscale_prob);
        let t: TrainAugment = toml::from_str("erase_count = 2").unwrap();
        assert_eq!(
            t.config(true).jitter_prob,
            AugmentConfig::finetune().jitter_prob
        );
        assert_eq!(t.config(true).erase_count, 2);
        let err = toml::from_str::<TrainAugment>("erase_pro = 0.1").unwrap_err();
        assert!(err.to_string().contains("erase_pro"), "{err}");
    }
}
