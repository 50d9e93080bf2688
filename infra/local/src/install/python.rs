//! The Python environment the interoperability tests run in: a virtualenv in the cache with
//! exactly the pinned packages of `tests/interop/requirements.txt`, made once (under the install
//! lock, so concurrent test processes do not pip-install into one venv at once) and remade when
//! the pins change.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use sha2::{Digest as _, Sha256};

use super::{CacheDir, Installed};
use crate::LocalError;

/// The pinned requirements, `name==version` per line.
pub const REQUIREMENTS: &str = include_str!("../../../../tests/interop/requirements.txt");

/// The venv's Python, installing the requirements first when they are missing or changed.
pub fn ensure_python_interop(cache: &CacheDir, allow_install: bool) -> Result<Installed, LocalError> {
    let venv = cache.root().join("python-interop");
    let python = venv.join("bin/python");
    let marker = venv.join("sealtrail-requirements.sha256");
    let wanted = requirements_digest();
    let ready =
        || std::fs::read_to_string(&marker).is_ok_and(|d| d.trim() == wanted) && imports_pinned(&python).is_ok();
    if ready() {
        return Ok(Installed {
            path: python,
            newly_installed: false,
        });
    }
    if !allow_install {
        return Err(LocalError::MissingBinary {
            what: "the Python environment of the interoperability tests",
            path: python,
            hint: "run `sealtrail setup` to create it (pip installs tests/interop/requirements.txt)",
        });
    }
    let _lock = cache.lock("python-interop")?;
    if ready() {
        return Ok(Installed {
            path: python,
            newly_installed: false,
        });
    }
    eprintln!(
        "Creating the Python environment of the interoperability tests in {}",
        venv.display()
    );
    std::fs::remove_dir_all(&venv).ok();
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    let requirements = venv.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS).map_err(LocalError::io("write", &requirements))?;
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--disable-pip-version-check", "--progress-bar", "off", "-r"])
            .arg(&requirements),
        "pip install -r tests/interop/requirements.txt",
    )?;
    imports_pinned(&python).map_err(|reason| LocalError::Install {
        what: "the Python environment of the interoperability tests",
        reason,
    })?;
    std::fs::write(&marker, &wanted).map_err(LocalError::io("write", &marker))?;
    Ok(Installed {
        path: python,
        newly_installed: true,
    })
}

/// `name==version` pairs of the requirements.
fn pins() -> Vec<(&'static str, &'static str)> {
    REQUIREMENTS
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once("=="))
        .collect()
}

fn requirements_digest() -> String {
    Sha256::digest(REQUIREMENTS.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Imports every pinned package and checks its installed version is the pinned one.
fn imports_pinned(python: &PathBuf) -> Result<(), String> {
    let mut script = String::from("import importlib, importlib.metadata as m\n");
    for (name, version) in pins() {
        let module = match name {
            "PyYAML" => "yaml".to_owned(),
            "python-dotenv" => "dotenv".to_owned(),
            "rpds-py" => "rpds".to_owned(),
            "Jinja2" => "jinja2".to_owned(),
            "MarkupSafe" => "markupsafe".to_owned(),
            "Pygments" => "pygments".to_owned(),
            "markdown-it-py" => "markdown_it".to_owned(),
            "python-dateutil" => "dateutil".to_owned(),
            other => other.replace('-', "_"),
        };
        let _ = writeln!(
            script,
            "importlib.import_module('{module}')\nassert m.version('{name}') == '{version}', ('{name}', m.version('{name}'))"
        );
    }
    let output = Command::new(python)
        .args(["-c", &script])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

fn run(command: &mut Command, what: &str) -> Result<(), LocalError> {
    let status = command.status().map_err(|e| LocalError::Install {
        what: "the Python environment of the interoperability tests",
        reason: format!("{what}: {e}"),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(LocalError::Install {
            what: "the Python environment of the interoperability tests",
            reason: format!("{what} exited with {status}"),
        })
    }
}
