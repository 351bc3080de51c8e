//! The optional config file: a TOML table whose keys are flag names. Its values become flags placed
//! before the real command line, and are skipped when the flag's environment variable is set, so the
//! precedence is: command line, then environment, then file, then built-in default.

use std::ffi::OsString;
use std::path::Path;

use clap::Parser;

use super::config::Sections;
use super::Config;

/// Keys of the config file that are sections, not flags.
const SECTIONS: [&str; 2] = ["tail-sampling", "exporters"];

/// Parses the process's command line, environment and config file.
pub fn load_config() -> Result<Config, clap::Error> {
    let args: Vec<OsString> = std::env::args_os().collect();
    load_from(args, |key| std::env::var_os(key))
}

pub fn load_from(
    args: Vec<OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Config, clap::Error> {
    let path = config_path(&args).or_else(|| env("MESHTRACE_CONFIG"));
    let Some(path) = path else {
        return Config::try_parse_from(args);
    };
    let (file_args, sections) = file_args(Path::new(&path), &env).map_err(|msg| {
        clap::Error::raw(clap::error::ErrorKind::InvalidValue, format!("{msg}\n"))
    })?;
    let mut all = Vec::with_capacity(args.len() + file_args.len());
    let mut rest = args.into_iter();
    all.extend(rest.next());
    all.extend(file_args.into_iter().map(OsString::from));
    all.extend(rest);
    let mut config = Config::try_parse_from(all)?;
    config.sections = sections;
    Ok(config)
}

fn config_path(args: &[OsString]) -> Option<OsString> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return iter.next().cloned();
        }
        if let Some(v) = arg.strip_prefix("--config=") {
            return Some(v.into());
        }
    }
    None
}

fn file_args(
    path: &Path,
    env: &impl Fn(&str) -> Option<OsString>,
) -> Result<(Vec<String>, Sections), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading config file {}: {e}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut sections = toml::Table::new();
    for (key, value) in table {
        let flag = key.replace('_', "-");
        if flag == "config" {
            continue;
        }
        if SECTIONS.contains(&flag.as_str()) {
            sections.insert(flag, value);
            continue;
        }
        let env_key = format!("MESHTRACE_{}", flag.replace('-', "_").to_ascii_uppercase());
        if env(&env_key).is_some() {
            continue;
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "config file {}: {key} must be a string or number, not a {}",
                    path.display(),
                    other.type_str()
                ))
            }
        };
        out.push(format!("--{flag}={value}"));
    }
    let sections: Sections = toml::Value::Table(sections)
        .try_into()
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    Ok((out, sections))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_flag_then_env_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "data-dir = \"/from/file\"\nmax_body_bytes = 1000\nhttp-addr = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let args = |extra: &[&str]| {
            let mut v: Vec<OsString> = vec!["x".into(), "--config".into(), file.clone().into()];
            v.extend(extra.iter().map(OsString::from));
            v
        };
        let c = load_from(args(&[]), |_| None).unwrap();
        assert_eq!(c.data_dir, Path::new("/from/file"), "file value used");
        assert_eq!(c.max_body_bytes, 1000, "snake_case key accepted");
        let c = load_from(args(&["--data-dir", "/from/flag"]), |_| None).unwrap();
        assert_eq!(c.data_dir, Path::new("/from/flag"), "flag beats file");
        let c = load_from(args(&[]), |k| {
            (k == "MESHTRACE_HTTP_ADDR").then(|| "127.0.0.1:2".into())
        })
        .unwrap();
        assert_eq!(
            c.http_addr.port(),
            16686,
            "file value skipped when the env var is set (clap reads the env itself)"
        );
        std::fs::write(&file, "bogus-flag = 1\n").unwrap();
        assert!(
            load_from(args(&[]), |_| None).is_err(),
            "unknown key is an error"
        );
    }
}
