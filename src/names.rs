//! Enum values by the names the experiment TOML gives them (their serde names): how the command
//! line parses `--arch r3d18_dilated`, `--teacher distinctive` or `--conv gemm`, so that the
//! library's types need no clap derive and a name means the same on the command line as in a
//! file.

use serde::de::IntoDeserializer;
use serde::de::value::{Error, StrDeserializer};

/// `T`'s value named `text`; an unknown name lists the valid ones (serde's "expected one of …").
pub fn by_name<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    let de: StrDeserializer<'_, Error> = text.into_deserializer();
    T::deserialize(de).map_err(|e| e.to_string())
}

/// The name `value` has in an experiment TOML (its serde name), for messages.
pub fn name_of<T: serde::Serialize + std::fmt::Debug>(value: &T) -> String {
    toml::Value::try_from(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{value:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arch;
    use crate::ops::ConvAlgorithm;

    #[test]
    fn values_parse_by_their_toml_names_and_errors_list_them() {
        assert_eq!(by_name::<Arch>("r3d18_dilated"), Ok(Arch::R3d18Dilated));
        assert_eq!(by_name::<Arch>("slow_r50"), Ok(Arch::SlowR50));
        assert_eq!(by_name::<ConvAlgorithm>("gemm"), Ok(ConvAlgorithm::Gemm));
        assert_eq!(by_name::<ConvAlgorithm>("direct"), Ok(ConvAlgorithm::Auto));
        assert_eq!(name_of(&Arch::R3d18Dilated), "r3d18_dilated");
        let err = by_name::<Arch>("r3d").unwrap_err();
        assert!(err.contains("r3d") && err.contains("r2plus1d18"), "{err}");
    }
}
