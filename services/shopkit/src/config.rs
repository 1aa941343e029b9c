//! Typed configuration from environment variables and secret files.
//!
//! Every setting is read through [`Settings`], which names the variable in its error, so
//! a service that cannot start says exactly which setting is missing or malformed.

use std::collections::HashMap;
use std::fmt::Display;
use std::path::PathBuf;
use std::str::FromStr;

/// A setting that is missing or does not parse. The message names the variable and
/// what a valid value looks like.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {name} {problem}")]
pub struct ConfigError {
    pub name: String,
    pub problem: String,
}

/// Where settings come from: the process environment (or a fixed map in tests) plus a
/// secrets directory (`/run/secrets` in containers).
#[derive(Debug, Clone)]
pub struct Settings {
    vars: HashMap<String, String>,
    secrets_dir: PathBuf,
}

impl Settings {
    /// The process environment; secrets under `$SECRETS_DIR` (default `/run/secrets`).
    pub fn from_env() -> Self {
        Self::from_vars(std::env::vars())
    }

    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let vars: HashMap<String, String> = vars.into_iter().collect();
        let secrets_dir = vars
            .get("SECRETS_DIR")
            .map_or_else(|| PathBuf::from("/run/secrets"), PathBuf::from);
        Self { vars, secrets_dir }
    }

    /// The raw value, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str, hint: &str) -> Result<String, ConfigError> {
        self.get(name)
            .map(str::to_owned)
            .ok_or_else(|| ConfigError {
                name: name.to_owned(),
                problem: format!("is not set: {hint}"),
            })
    }

    /// Parses the value with `FromStr`, or returns `default` when unset.
    pub fn parse_or<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.parse().map_err(|e| ConfigError {
                name: name.to_owned(),
                problem: format!("has the malformed value {raw:?}: {e}"),
            }),
        }
    }

    /// A secret: the file named by `<NAME>_FILE`, else `<secrets_dir>/<name in lower
    /// case>`, else the variable itself. Trailing newlines of files are dropped.
    pub fn secret(&self, name: &str) -> Result<Option<String>, ConfigError> {
        self.secret_file(name, &name.to_lowercase())
    }

    /// Like [`Settings::secret`], for a secret whose file in the secrets directory is not
    /// the variable's name in lower case (`JWT_SIGNING_KEY` in `jwt_signing_key.pem`).
    pub fn secret_file(&self, name: &str, file_name: &str) -> Result<Option<String>, ConfigError> {
        let file_var = format!("{name}_FILE");
        let path = match self.get(&file_var) {
            Some(path) => Some(PathBuf::from(path)),
            None => {
                let candidate = self.secrets_dir.join(file_name);
                candidate.is_file().then_some(candidate)
            }
        };
        match path {
            Some(path) => std::fs::read_to_string(&path)
                .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_owned()))
                .map_err(|e| ConfigError {
                    name: file_var,
                    problem: format!("points at {} which cannot be read: {e}", path.display()),
                }),
            None => Ok(self.get(name).map(str::to_owned)),
        }
    }

    /// Where secret files are looked up: `$SECRETS_DIR`, default `/run/secrets`.
    pub fn secrets_dir(&self) -> &std::path::Path {
        &self.secrets_dir
    }

    pub fn required_secret(&self, name: &str, hint: &str) -> Result<String, ConfigError> {
        self.secret(name)?.ok_or_else(|| ConfigError {
            name: name.to_owned(),
            problem: format!(
                "is not set: {hint} (or put it in {}/{}, or name a file in {name}_FILE)",
                self.secrets_dir.display(),
                name.to_lowercase()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_vars(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
    }

    #[test]
    fn missing_required_setting_names_the_variable() {
        let err = settings(&[])
            .required("DATABASE_URL", "a postgres:// URL")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration error: DATABASE_URL is not set: a postgres:// URL"
        );
    }

    #[test]
    fn malformed_value_is_quoted_with_the_parse_error() {
        let err = settings(&[("PORT", "80x")])
            .parse_or("PORT", 8080_u16)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("PORT has the malformed value \"80x\""),
            "{err}"
        );
        assert_eq!(settings(&[]).parse_or("PORT", 8080_u16).unwrap(), 8080);
    }

    #[test]
    fn secrets_come_from_file_var_then_secrets_dir_then_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db_password"), "from-dir\n").unwrap();
        let explicit = dir.path().join("explicit");
        std::fs::write(&explicit, "from-file").unwrap();
        let d = dir.path().to_str().unwrap();
        let e = explicit.to_str().unwrap();

        let s = settings(&[("SECRETS_DIR", d), ("DB_PASSWORD_FILE", e)]);
        assert_eq!(
            s.secret("DB_PASSWORD").unwrap().as_deref(),
            Some("from-file")
        );
        let s = settings(&[("SECRETS_DIR", d), ("DB_PASSWORD", "env")]);
        assert_eq!(
            s.secret("DB_PASSWORD").unwrap().as_deref(),
            Some("from-dir")
        );
        let s = settings(&[("SECRETS_DIR", "/nonexistent"), ("DB_PASSWORD", "env")]);
        assert_eq!(s.secret("DB_PASSWORD").unwrap().as_deref(), Some("env"));
        std::fs::write(dir.path().join("signing_key.pem"), "pem\n").unwrap();
        let s = settings(&[("SECRETS_DIR", d)]);
        assert_eq!(
            s.secret_file("SIGNING_KEY", "signing_key.pem")
                .unwrap()
                .as_deref(),
            Some("pem")
        );
        assert_eq!(s.secrets_dir(), dir.path());
        let s = settings(&[("DB_PASSWORD_FILE", "/nonexistent/x")]);
        assert!(
            s.secret("DB_PASSWORD")
                .unwrap_err()
                .to_string()
                .contains("cannot be read")
        );
    }
}
