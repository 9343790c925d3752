//! Experiment files that build on another: `extends = "base/paper"` at the top of a file
//! takes every key of `experiments/base/paper.toml` and lets the file set only what differs
//! (its dataset, its label fraction). Tables merge key by key; any other value the file sets
//! replaces the base's. Bases may extend further bases. The run directory still receives the
//! fully resolved configuration (`config.toml`), so a run never depends on the chain.

use anyhow::{Context, Result, bail};

/// The key naming the file a settings file extends.
pub const EXTENDS_KEY: &str = "extends";
/// Longest chain of `extends` followed; a longer one is reported as a cycle.
const MAX_CHAIN: usize = 8;

/// A base's TOML text and where it came from (for messages).
pub struct BaseText {
    pub text: String,
    pub origin: String,
}

/// Parse `text` and resolve its `extends` chain: the returned table holds the base's keys with
/// the file's merged over them, and no `extends` key. `find` looks a base up by name.
/// `exclusive` lists pairs of dotted keys that exclude each other: a file that sets one drops
/// the other from its base.
pub fn resolve(
    text: &str,
    origin: &str,
    exclusive: &[(&str, &str)],
    find: &dyn Fn(&str) -> Result<BaseText>,
) -> Result<toml::Table> {
    resolve_chain(text, origin, exclusive, find, &mut Vec::new())
}

fn resolve_chain(
    text: &str,
    origin: &str,
    exclusive: &[(&str, &str)],
    find: &dyn Fn(&str) -> Result<BaseText>,
    chain: &mut Vec<String>,
) -> Result<toml::Table> {
    let mut table: toml::Table =
        toml::from_str(text).with_context(|| format!("parsing {origin}"))?;
    let Some(base) = table.remove(EXTENDS_KEY) else {
        return Ok(table);
    };
    let name = base
        .as_str()
        .with_context(|| format!("{origin}: `{EXTENDS_KEY}` must be a string naming a file"))?
        .to_string();
    chain.push(origin.to_string());
    if chain.len() > MAX_CHAIN {
        bail!(
            "{origin}: `{EXTENDS_KEY}` chain longer than {MAX_CHAIN} (a cycle?): {}",
            chain.join(" → ")
        );
    }
    let base = find(&name).with_context(|| format!("{origin}: {EXTENDS_KEY} = {name:?}"))?;
    let mut resolved = resolve_chain(&base.text, &base.origin, exclusive, find, chain)?;
    merge(&mut resolved, table, "", exclusive);
    Ok(resolved)
}

/// `child` over `base`: tables merge key by key, every other value replaces the base's.
/// `prefix` is the dotted path of `base` (empty at the top).
pub fn merge(base: &mut toml::Table, child: toml::Table, prefix: &str, exclusive: &[(&str, &str)]) {
    for (key, value) in child {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        for (a, b) in exclusive {
            let other = if path == *a {
                *b
            } else if path == *b {
                *a
            } else {
                continue;
            };
            let (other_prefix, other_last) = other.rsplit_once('.').unwrap_or(("", other));
            if other_prefix == prefix {
                base.remove(other_last);
            }
        }
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(c)) => merge(b, c, &path, exclusive),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
seed = 0
[data]
split = 1
labeled_fraction = 0.01
size = 224
[model]
arch = "slow_r50"
width = 64
"#;

    const EXCLUSIVE: [(&str, &str); 1] = [("data.labeled_fraction", "data.labeled_per_class")];

    fn find(name: &str) -> Result<BaseText> {
        match name {
            "base" => Ok(BaseText {
                text: BASE.into(),
                origin: "base.toml".into(),
            }),
            "r18" => Ok(BaseText {
                text: "extends = \"base\"\n[model]\narch = \"r3d18\"\n".into(),
                origin: "r18.toml".into(),
            }),
            "loop" => Ok(BaseText {
                text: "extends = \"loop\"\n".into(),
                origin: "loop.toml".into(),
            }),
            other => bail!("no base named {other:?}"),
        }
    }

    fn resolved(text: &str) -> Result<toml::Table> {
        resolve(text, "file.toml", &EXCLUSIVE, &find)
    }

    #[test]
    fn tables_merge_and_values_replace() {
        let t = resolved("extends = \"r18\"\n[data]\nsize = 112\n").unwrap();
        assert!(!t.contains_key(EXTENDS_KEY));
        assert_eq!(t["seed"].as_integer(), Some(0));
        assert_eq!(
            t["data"]["size"].as_integer(),
            Some(112),
            "the file's value wins"
        );
        assert_eq!(
            t["data"]["split"].as_integer(),
            Some(1),
            "the base's other keys stay"
        );
        assert_eq!(
            t["model"]["arch"].as_str(),
            Some("r3d18"),
            "the middle base's value"
        );
        assert_eq!(t["model"]["width"].as_integer(), Some(64));
    }

    #[test]
    fn a_file_without_extends_is_itself() {
        let t = resolved(BASE).unwrap();
        assert_eq!(t, toml::from_str::<toml::Table>(BASE).unwrap());
    }

    #[test]
    fn setting_one_exclusive_key_drops_the_other() {
        let t = resolved("extends = \"base\"\n[data]\nlabeled_per_class = 3\n").unwrap();
        assert_eq!(t["data"]["labeled_per_class"].as_integer(), Some(3));
        assert!(
            !t["data"]
                .as_table()
                .unwrap()
                .contains_key("labeled_fraction")
        );
    }

    #[test]
    fn unknown_bases_and_cycles_are_errors_that_name_the_file() {
        let err = format!("{:#}", resolved("extends = \"nope\"\n").unwrap_err());
        assert!(err.contains("file.toml") && err.contains("nope"), "{err}");
        let err = format!("{:#}", resolved("extends = \"loop\"\n").unwrap_err());
        assert!(err.contains("cycle") && err.contains("loop.toml"), "{err}");
        let err = format!("{:#}", resolved("extends = 3\n").unwrap_err());
        assert!(err.contains("must be a string"), "{err}");
    }
}
