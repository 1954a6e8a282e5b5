//! The optional TOML file: its keys are the settings' names in lower case.

use super::*;

/// Reads the TOML file into setting name → value text.
pub(super) fn read_file(path: &PathBuf) -> Result<HashMap<&'static str, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    parse_file(&text, path)
}

impl Config {
    /// The configuration a TOML file's text gives, alone (the fuzz target's entry).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let map = parse_file(text, &PathBuf::from("<text>"))?;
        Self::from_lookup(&|name| map.get(name).cloned())
    }
}

fn parse_file(
    text: &str,
    path: &std::path::Path,
) -> Result<HashMap<&'static str, String>, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.message().to_owned(),
        })?;
    let mut out = HashMap::new();
    for (key, value) in table {
        let Some(name) = SETTINGS
            .iter()
            .map(|s| s.name)
            .find(|name| name.eq_ignore_ascii_case(&key))
        else {
            return Err(ConfigError::UnknownKey {
                path: path.to_path_buf(),
                key,
            });
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
            other => {
                return Err(ConfigError::File {
                    path: path.to_path_buf(),
                    reason: format!("{key}: unsupported value {other}"),
                });
            }
        };
        out.insert(name, text);
    }
    Ok(out)
}
