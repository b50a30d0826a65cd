//! Running the `iptables` / `ip6tables` binaries for `mesh-agent capture`. We invoke the
//! binary (as istio-init and linkerd proxy-init do) rather than talking netlink: the same
//! code then works with both the nf_tables and the legacy backend, whichever the node
//! uses, and every change is a command a human can read, rerun and undo. This module
//! turns the rule plan into those commands, makes installing and removing idempotent,
//! and turns failures into errors that say what to do.

use std::io::ErrorKind;
use std::process::Command;

use super::rules::{CHAINS, Family, Plan, Rule, TABLE, jumps};

/// Bounds the loop deleting duplicated jumps (someone may have added ours twice).
const MAX_DUPLICATE_JUMPS: usize = 64;

/// Why an `iptables` command failed.
#[derive(Debug, thiserror::Error)]
pub enum IptablesError {
    /// The binary is not installed (or not on `PATH`).
    #[error(
        "`{binary}` not found on PATH: install it (Debian/Ubuntu package `iptables`: apt-get install iptables) or pick another --iptables-backend"
    )]
    NotFound {
        /// The binary.
        binary: String,
    },
    /// The binary could not be started for another reason.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The error.
        source: std::io::Error,
    },
    /// The command ran and failed for lack of privilege.
    #[error(
        "`{command}` failed: {stderr}\nchanging the firewall needs CAP_NET_ADMIN in this network namespace: run as root, or grant NET_ADMIN (in Kubernetes: securityContext.capabilities.add: [NET_ADMIN])"
    )]
    Permission {
        /// The command line.
        command: String,
        /// Its stderr.
        stderr: String,
    },
    /// The command ran and failed otherwise.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// Its stderr.
        stderr: String,
    },
}

/// One `iptables`-like binary (`iptables`, `ip6tables-nft`, `iptables-legacy`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iptables {
    /// The binary, looked up on `PATH`.
    pub binary: String,
}

/// The outcome of one command that ran.
struct Outcome {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Iptables {
    /// The binary for `family` with `base` being `iptables`, `iptables-nft` or
    /// `iptables-legacy`.
    pub fn new(base: &str, family: Family) -> Self {
        let binary = match family {
            Family::V4 => base.to_owned(),
            Family::V6 => base.replacen("iptables", "ip6tables", 1),
        };
        Iptables { binary }
    }

    /// The command line of `args`, as printed by `--dry-run` and in errors.
    pub fn command_line(&self, args: &[String]) -> String {
        let mut line = self.binary.clone();
        for arg in args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }

    fn run(&self, args: &[String]) -> Result<Outcome, IptablesError> {
        let output =
            Command::new(&self.binary)
                .args(args)
                .output()
                .map_err(|source| match source.kind() {
                    ErrorKind::NotFound => IptablesError::NotFound {
                        binary: self.binary.clone(),
                    },
                    _ => IptablesError::Spawn {
                        command: self.command_line(args),
                        source,
                    },
                })?;
        Ok(Outcome {
            success: output.status.success(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }

    fn failure(&self, args: &[String], outcome: Outcome) -> IptablesError {
        let command = self.command_line(args);
        if is_permission_error(&outcome.stderr) || !has_net_admin() {
            IptablesError::Permission {
                command,
                stderr: outcome.stderr,
            }
        } else {
            IptablesError::Failed {
                command,
                status: outcome
                    .code
                    .map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}")),
                stderr: outcome.stderr,
            }
        }
    }

    /// Runs `args`, which must succeed.
    fn must(&self, args: &[String]) -> Result<Outcome, IptablesError> {
        let outcome = self.run(args)?;
        if outcome.success {
            Ok(outcome)
        } else {
            Err(self.failure(args, outcome))
        }
    }

    /// `-C`: whether `rule` exists (exit 1 means it does not; anything else is an error).
    fn exists(&self, rule: &Rule) -> Result<bool, IptablesError> {
        let args = rule_args("-C", rule);
        let outcome = self.run(&args)?;
        match outcome.code {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(self.failure(&args, outcome)),
        }
    }

    /// Our chains that exist now, read from `iptables -t nat -S`.
    fn existing_chains(&self) -> Result<Vec<&'static str>, IptablesError> {
        let outcome = self.must(&args(&["-t", TABLE, "-S"]))?;
        let declared: Vec<&str> = outcome
            .stdout
            .lines()
            .filter_map(|line| line.strip_prefix("-N "))
            .map(str::trim)
            .collect();
        Ok(CHAINS
            .into_iter()
            .filter(|chain| declared.contains(chain))
            .collect())
    }

    /// Installs `plan`: creates our chains (or flushes them if they exist), fills them,
    /// and adds each jump from a built-in chain unless it is already there. Running it
    /// again leaves exactly the same rules. Returns the commands that changed something.
    pub fn install(&self, plan: &Plan) -> Result<Vec<String>, IptablesError> {
        let existing = self.existing_chains()?;
        let mut ran = Vec::new();
        for chain in CHAINS {
            let verb = if existing.contains(&chain) {
                "-F"
            } else {
                "-N"
            };
            ran.push(self.change(&args(&["-t", TABLE, verb, chain]))?);
        }
        for rule in &plan.rules {
            ran.push(self.change(&rule_args("-A", rule))?);
        }
        for jump in &plan.jumps {
            if !self.exists(jump)? {
                ran.push(self.change(&rule_args("-A", jump))?);
            }
        }
        Ok(ran)
    }

    /// Removes what [`Iptables::install`] installs: the jumps, then our chains. Removing
    /// twice succeeds and changes nothing. Returns the commands that changed something.
    pub fn remove(&self) -> Result<Vec<String>, IptablesError> {
        let existing = self.existing_chains()?;
        let mut ran = Vec::new();
        for jump in jumps() {
            // A jump can only exist while its target chain does.
            if !existing
                .iter()
                .any(|chain| jump.spec.last().is_some_and(|t| t == chain))
            {
                continue;
            }
            for _ in 0..MAX_DUPLICATE_JUMPS {
                if !self.exists(&jump)? {
                    break;
                }
                ran.push(self.change(&rule_args("-D", &jump))?);
            }
        }
        for chain in &existing {
            ran.push(self.change(&args(&["-t", TABLE, "-F", chain]))?);
        }
        for chain in &existing {
            ran.push(self.change(&args(&["-t", TABLE, "-X", chain]))?);
        }
        Ok(ran)
    }

    fn change(&self, args: &[String]) -> Result<String, IptablesError> {
        self.must(args)?;
        Ok(self.command_line(args))
    }

    /// The commands [`Iptables::install`] runs in a namespace without our chains.
    pub fn install_commands(&self, plan: &Plan) -> Vec<String> {
        CHAINS
            .iter()
            .map(|chain| args(&["-t", TABLE, "-N", chain]))
            .chain(plan.rules.iter().map(|rule| rule_args("-A", rule)))
            .chain(plan.jumps.iter().map(|rule| rule_args("-A", rule)))
            .map(|a| self.command_line(&a))
            .collect()
    }

    /// The commands [`Iptables::remove`] runs where everything is installed.
    pub fn remove_commands(&self) -> Vec<String> {
        jumps()
            .iter()
            .map(|rule| rule_args("-D", rule))
            .chain(CHAINS.iter().map(|chain| args(&["-t", TABLE, "-F", chain])))
            .chain(CHAINS.iter().map(|chain| args(&["-t", TABLE, "-X", chain])))
            .map(|a| self.command_line(&a))
            .collect()
    }
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn rule_args(verb: &str, rule: &Rule) -> Vec<String> {
    let mut all = args(&["-t", TABLE, verb, rule.chain]);
    all.extend(rule.spec.iter().cloned());
    all
}

/// Whether iptables' stderr says it lacked the privilege (nft: "Permission denied (you
/// must be root)", "Operation not permitted"; legacy: "can't open lock file …: Permission
/// denied", "Permission denied (you must be root)").
fn is_permission_error(stderr: &str) -> bool {
    let stderr = stderr.to_ascii_lowercase();
    [
        "permission denied",
        "operation not permitted",
        "must be root",
    ]
    .iter()
    .any(|needle| stderr.contains(needle))
}

/// Whether this process has CAP_NET_ADMIN (bit 12 of `CapEff` in /proc/self/status). If
/// that cannot be read, assume it does (and let iptables' own error speak).
fn has_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_none_or(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// Whether `binary` is an executable file in a directory of `PATH`.
pub fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(binary))
                .is_ok_and(|meta| meta.is_file() && executable(&meta))
        })
    })
}

#[cfg(unix)]
fn executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_: &std::fs::Metadata) -> bool {
    true
}
