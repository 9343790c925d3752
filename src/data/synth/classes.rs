//! The class catalogue: the two families (appearance-defined invariant classes, direction-
//! defined distinctive pairs), their names and labels, and the records written to
//! `classInd.txt` and `classes.json`. Separate from the scene and motion code because it only
//! says *which* classes exist and what defines each; how they are drawn and moved is theirs.

use serde::{Deserialize, Serialize};

/// Whether frame order matters for a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// Appearance defines the class; order does not matter.
    Invariant,
    /// Direction of change defines the class; order matters.
    Distinctive,
}

/// One class as written to `classInd.txt` and `classes.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassInfo {
    /// 1-based label, as in `classInd.txt` and `trainlist01.txt`.
    pub label: usize,
    /// Class name (no spaces), also the directory name.
    pub name: String,
    /// Class family.
    pub family: Family,
}

/// Contents of `classes.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassesFile {
    /// All classes in label order.
    pub classes: Vec<ClassInfo>,
}

/// Shapes of the invariant classes, in class order, plus the shared distinctive appearance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Circle,
    Square,
    Cross,
    Stripes,
    Triangle,
    Ring,
    Checker,
    Diamond,
    /// A bar with one darker end: the shared appearance of all distinctive classes.
    MarkedBar,
}

/// Ordered so that every prefix (a run with fewer classes takes the first ones) holds the
/// most distinct appearances: a square against a disc of similar size was the last pair a
/// width-8 R3D-18 at 32² told apart (ours and its PyTorch twin alike, 60 epochs, every label:
/// all remaining errors were circle ↔ square), so the demo's three shapes are circle, cross
/// and stripes, and the square comes fourth.
const INVARIANT_SHAPES: [(Shape, &str); 8] = [
    (Shape::Circle, "InvCircle"),
    (Shape::Cross, "InvCross"),
    (Shape::Stripes, "InvStripes"),
    (Shape::Square, "InvSquare"),
    (Shape::Triangle, "InvTriangle"),
    (Shape::Ring, "InvRing"),
    (Shape::Checker, "InvChecker"),
    (Shape::Diamond, "InvDiamond"),
];

/// The attribute a distinctive pair changes (a pair: the change and its time reversal).
/// Names in configurations: `move_horizontal`, `scale`, `rotate`, `brightness`,
/// `move_vertical`, `posture`.
///
/// The first five change steadily for the whole video, so every clip of a video shows the same
/// direction: a feature that ignores *when* a clip was taken can keep it (the time-invariant
/// teacher did, `docs/results/synthetic_claim.md`, "Iteration 3"). `posture` is one event
/// between two held states (a bar lying down, then standing up, like the paper's sit-up vs
/// stand-up): clips before and after it look different, so only order separates the pair and
/// a feature that maps every clip of a video to one point has to lose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistinctiveChange {
    MoveHorizontal,
    Scale,
    Rotate,
    Brightness,
    MoveVertical,
    Posture,
}

impl std::fmt::Display for DistinctiveChange {
    /// The configuration name (as serde writes it; a test keeps the two the same).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::MoveHorizontal => "move_horizontal",
            Self::Scale => "scale",
            Self::Rotate => "rotate",
            Self::Brightness => "brightness",
            Self::MoveVertical => "move_vertical",
            Self::Posture => "posture",
        })
    }
}

impl std::str::FromStr for DistinctiveChange {
    type Err = String;

    /// The configuration name (one list of names: serde's).
    fn from_str(name: &str) -> Result<Self, String> {
        use serde::de::IntoDeserializer as _;
        let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            name.into_deserializer();
        Self::deserialize(de).map_err(|e| e.to_string())
    }
}

/// Distinctive pairs: (change, name of the forward class, name of its time reversal).
const DISTINCTIVE_PAIRS: [(DistinctiveChange, &str, &str); 6] = [
    (
        DistinctiveChange::MoveHorizontal,
        "DistMoveRight",
        "DistMoveLeft",
    ),
    (DistinctiveChange::Scale, "DistGrow", "DistShrink"),
    (DistinctiveChange::Rotate, "DistRotateCw", "DistRotateCcw"),
    (DistinctiveChange::Brightness, "DistBrighten", "DistDarken"),
    (
        DistinctiveChange::MoveVertical,
        "DistMoveDown",
        "DistMoveUp",
    ),
    (DistinctiveChange::Posture, "DistStandUp", "DistLieDown"),
];

/// The catalogue's order of the distinctive pairs, the default of
/// [`super::SynthConfig::distinctive_changes`]: a run with `n` distinctive classes takes the
/// first `n / 2` pairs (rounded up; an odd `n` takes only the forward class of the last).
pub const DEFAULT_DISTINCTIVE_CHANGES: [DistinctiveChange; 6] = [
    DistinctiveChange::MoveHorizontal,
    DistinctiveChange::Scale,
    DistinctiveChange::Rotate,
    DistinctiveChange::Brightness,
    DistinctiveChange::MoveVertical,
    DistinctiveChange::Posture,
];

/// Largest supported number of classes (twice the smaller family catalogue).
pub const MAX_CLASSES: usize = 2 * INVARIANT_SHAPES.len();

/// What makes a class.
#[derive(Debug, Clone, Copy)]
pub(super) enum ClassKind {
    Invariant(Shape),
    Distinctive {
        change: DistinctiveChange,
        reversed: bool,
    },
}

/// A class with its kind.
#[derive(Debug, Clone)]
pub(super) struct ClassSpec {
    pub(super) info: ClassInfo,
    pub(super) kind: ClassKind,
}

/// Builds the class list: the first half invariant, the second half the distinctive pairs of
/// `changes`, in their order (validated by the caller: enough of them, none twice).
pub(super) fn class_specs(classes: usize, changes: &[DistinctiveChange]) -> Vec<ClassSpec> {
    let half = classes / 2;
    let invariant = INVARIANT_SHAPES
        .iter()
        .take(half)
        .map(|&(shape, name)| (name, ClassKind::Invariant(shape)));
    let distinctive = changes
        .iter()
        .filter_map(|change| DISTINCTIVE_PAIRS.iter().find(|pair| pair.0 == *change))
        .flat_map(|&(change, forward, backward)| {
            [(forward, false), (backward, true)]
                .map(|(name, reversed)| (name, ClassKind::Distinctive { change, reversed }))
        })
        .take(half);
    invariant
        .chain(distinctive)
        .enumerate()
        .map(|(i, (name, kind))| ClassSpec {
            info: ClassInfo {
                label: i + 1,
                name: name.to_string(),
                family: match kind {
                    ClassKind::Invariant(_) => Family::Invariant,
                    ClassKind::Distinctive { .. } => Family::Distinctive,
                },
            },
            kind,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reads_and_prints_by_its_configuration_name() {
        for change in DEFAULT_DISTINCTIVE_CHANGES {
            let name = change.to_string();
            let toml_name = toml::Value::try_from(change).unwrap();
            assert_eq!(toml_name.as_str(), Some(name.as_str()));
            assert_eq!(name.parse::<DistinctiveChange>(), Ok(change));
        }
        assert!("Scale".parse::<DistinctiveChange>().is_err());
        // The default lists every pair of the catalogue, in its order.
        let catalogue: Vec<_> = DISTINCTIVE_PAIRS.iter().map(|pair| pair.0).collect();
        assert_eq!(catalogue, DEFAULT_DISTINCTIVE_CHANGES);
    }
}
