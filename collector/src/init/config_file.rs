//! The optional config file: a TOML table whose keys are flag names, plus the sections that are not flags
//! (`[tail-sampling]`, `[[exporters]]`).
//!
//! Precedence is command line, then environment, then file, then built-in default. clap already knows
//! the first two and the last: the command line is parsed once, and every file value whose flag clap
//! reports as unset or defaulted (`ArgMatches::value_source`) is added as a flag for a second parse. No
//! environment variable name is guessed, so a flag whose variable is not named after it
//! (`--log-level`, `MESHTRACE_LOG`) layers like any other.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

use super::config::Sections;
use super::Config;

/// Keys of the config file that are sections, not flags.
const SECTIONS: [&str; 2] = ["tail-sampling", "exporters"];

/// Parses the process's command line, environment and config file.
pub fn load_config() -> Result<Config, clap::Error> {
    load_from(std::env::args_os())
}

/// Parses `args` (the program name first) with the process's environment and the config file they name.
pub fn load_from(args: impl IntoIterator<Item = OsString>) -> Result<Config, clap::Error> {
    let args: Vec<OsString> = args.into_iter().collect();
    let command = Config::command();
    let matches = command.clone().try_get_matches_from(&args)?;
    let Some(path) = matches.get_one::<PathBuf>("config").cloned() else {
        return Config::from_arg_matches(&matches);
    };
    let file = read_file(&path).map_err(|msg| clap::Error::raw(ErrorKind::InvalidValue, msg))?;
    let mut layered = args;
    for (flag, value) in file.flags {
        let Some(arg) = command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag.as_str()))
        else {
            return Err(clap::Error::raw(
                ErrorKind::UnknownArgument,
                format!(
                    "config file {}: unknown key {flag:?} (not a flag of meshtrace-collector)\n",
                    path.display()
                ),
            ));
        };
        match matches.value_source(arg.get_id().as_str()) {
            Some(ValueSource::CommandLine | ValueSource::EnvVariable) => {}
            _ => layered.push(format!("--{flag}={value}").into()),
        }
    }
    let matches = command.try_get_matches_from(layered)?;
    let mut config = Config::from_arg_matches(&matches)?;
    config.sections = file.sections;
    Ok(config)
}

struct FileValues {
    /// (flag name, value) for every key that is a flag.
    flags: Vec<(String, String)>,
    sections: Sections,
}

fn read_file(path: &Path) -> Result<FileValues, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading config file {}: {e}\n", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("config file {}: {e}\n", path.display()))?;
    let mut flags = Vec::new();
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
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(format!(
                    "config file {}: {key} must be a string, number or boolean, not a {}\n",
                    path.display(),
                    other.type_str()
                ))
            }
        };
        flags.push((flag, value));
    }
    let sections: Sections = toml::Value::Table(sections)
        .try_into()
        .map_err(|e| format!("config file {}: {e}\n", path.display()))?;
    Ok(FileValues { flags, sections })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(super) mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// The process environment is shared by the tests of this binary: the ones that read or set
    /// `MESHTRACE_*` variables take turns.
    static ENV: Mutex<()> = Mutex::new(());

    pub(in crate::init) fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
        let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        let out = f();
        for (k, _) in vars {
            std::env::remove_var(k);
        }
        out
    }

    fn args(file: &Path, extra: &[&str]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["x".into(), "--config".into(), file.into()];
        v.extend(extra.iter().map(OsString::from));
        v
    }

    #[test]
    fn precedence_is_flag_then_env_then_file_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "data-dir = \"/from/file\"\nmax_body_bytes = 1000\nhttp-addr = \"127.0.0.1:1\"\n\
             log-level = \"debug\"\nretention-max-age = \"1h\"\nstore = false\n",
        )
        .unwrap();
        let c = with_env(&[], || load_from(args(&file, &[]))).unwrap();
        assert_eq!(c.data_dir, Path::new("/from/file"), "file value used");
        assert_eq!(c.max_body_bytes, 1000, "snake_case key accepted");
        assert_eq!(c.log_level, "debug", "file beats default");
        assert_eq!(c.retention_max_age, Duration::from_secs(3600));
        assert!(!c.store, "booleans from the file");
        assert_eq!(
            c.queue_max_requests, 1024,
            "default where nothing else says"
        );
        let c = with_env(&[], || {
            load_from(args(&file, &["--data-dir", "/from/flag"]))
        })
        .unwrap();
        assert_eq!(c.data_dir, Path::new("/from/flag"), "flag beats file");
        let c = with_env(
            &[
                ("MESHTRACE_HTTP_ADDR", "127.0.0.1:2"),
                ("MESHTRACE_LOG", "warn"),
            ],
            || load_from(args(&file, &[])),
        )
        .unwrap();
        assert_eq!(c.http_addr.port(), 2, "env beats file");
        assert_eq!(
            c.log_level, "warn",
            "env beats file for a flag whose variable is not named after it (MESHTRACE_LOG)"
        );
        let c = with_env(&[("MESHTRACE_LOG", "warn")], || {
            load_from(args(&file, &["--log-level", "error"]))
        })
        .unwrap();
        assert_eq!(c.log_level, "error", "flag beats env");
    }

    #[test]
    fn config_path_from_the_environment_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "queue-max-spans = 7\n").unwrap();
        let c = with_env(&[("MESHTRACE_CONFIG", file.to_str().unwrap())], || {
            load_from(["x".into()])
        })
        .unwrap();
        assert_eq!(c.queue_max_spans, 7, "MESHTRACE_CONFIG names the file");

        std::fs::write(&file, "bogus-flag = 1\n").unwrap();
        let e = with_env(&[], || load_from(args(&file, &[]))).unwrap_err();
        assert!(e.to_string().contains("bogus-flag"), "{e}");
        std::fs::write(&file, "retention-max-age = \"soon\"\n").unwrap();
        let e = with_env(&[], || load_from(args(&file, &[]))).unwrap_err();
        assert!(e.to_string().contains("retention-max-age"), "{e}");
        std::fs::write(&file, "data-dir = [1]\n").unwrap();
        assert!(with_env(&[], || load_from(args(&file, &[]))).is_err());
        let e = with_env(&[], || {
            load_from(args(&dir.path().join("missing.toml"), &[]))
        })
        .unwrap_err();
        assert!(e.to_string().contains("missing.toml"), "{e}");
    }
}
