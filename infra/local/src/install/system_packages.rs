//! What the console needs from the machine: Node.js and npm to build it, Chromium and its
//! `WebDriver` to test it in a real browser. They come from Debian's packages, installed with apt
//! when they are missing (as root, or through sudo).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Installed;
use crate::LocalError;

/// A set of programs and the Debian packages that bring them.
struct Packages {
    what: &'static str,
    programs: &'static [&'static str],
    apt_names: &'static [&'static str],
}

const NODE: Packages = Packages {
    what: "Node.js and npm (to build the web console)",
    programs: &["npm", "node"],
    apt_names: &["nodejs", "npm"],
};

const BROWSER: Packages = Packages {
    what: "Chromium and ChromeDriver (the console's browser tests)",
    programs: &["chromium", "chromedriver"],
    apt_names: &["chromium", "chromium-driver"],
};

/// Node.js, installing it when it is missing; the path of `node`.
pub fn ensure_node(allow_install: bool) -> Result<Installed, LocalError> {
    ensure(&NODE, allow_install)
}

/// Chromium and `ChromeDriver`, installing them when they are missing; the path of `chromedriver`.
pub fn ensure_browser(allow_install: bool) -> Result<Installed, LocalError> {
    ensure(&BROWSER, allow_install)
}

fn ensure(wanted: &Packages, allow_install: bool) -> Result<Installed, LocalError> {
    let last = wanted.programs[wanted.programs.len() - 1];
    if let Some(path) = all_found(wanted) {
        return Ok(Installed {
            path,
            newly_installed: false,
        });
    }
    if !allow_install {
        return Err(LocalError::MissingBinary {
            what: wanted.what,
            path: PathBuf::from(last),
            hint: "run `sealtrail setup` to install them with apt",
        });
    }
    eprintln!("Installing {} with apt: {}", wanted.what, wanted.apt_names.join(" "));
    let root = nix::unistd::Uid::effective().is_root();
    let apt = |arguments: &[&str]| -> Result<(), LocalError> {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        let status = command
            .args(arguments)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .map_err(|error| LocalError::Install {
                what: wanted.what,
                reason: format!(
                    "cannot run apt-get ({error}); install {} by hand",
                    wanted.apt_names.join(" ")
                ),
            })?;
        if status.success() {
            Ok(())
        } else {
            Err(LocalError::Install {
                what: wanted.what,
                reason: format!(
                    "apt-get {} exited with {status}; install {} by hand (as root)",
                    arguments.first().unwrap_or(&""),
                    wanted.apt_names.join(" ")
                ),
            })
        }
    };
    // The package lists of a fresh machine may be missing or stale.
    apt(&["update", "-q"])?;
    let mut install = vec!["install", "-y", "-q", "--no-install-recommends"];
    install.extend_from_slice(wanted.apt_names);
    apt(&install)?;
    all_found(wanted)
        .map(|path| Installed {
            path,
            newly_installed: true,
        })
        .ok_or_else(|| LocalError::Install {
            what: wanted.what,
            reason: format!(
                "apt installed {} but `{last}` is still not on PATH",
                wanted.apt_names.join(" ")
            ),
        })
}

/// The last program's path, when every program is on `PATH`.
fn all_found(wanted: &Packages) -> Option<PathBuf> {
    let mut found = None;
    for program in wanted.programs {
        found = Some(on_path(program)?);
    }
    found
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
