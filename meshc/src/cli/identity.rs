//! `meshc identity init|issue`: the mesh's certificate authority and the workload
//! certificates it signs, as files the agent's `--identity-dir` reads. The work is done by
//! `mesh-identity`; this module parses arguments, guards existing files and reports.

use std::path::Path;
use std::time::{Duration, SystemTime};

use mesh_identity::{CA_CERT_FILE, CA_KEY_FILE, CERT_FILE, Ca, KEY_FILE, SpiffeId};

use super::Exit;

/// `meshc identity init DIR [--force]`.
pub fn init(dir: &Path, name: &str, force: bool) -> Exit {
    let existing: Vec<_> = [CA_CERT_FILE, CA_KEY_FILE]
        .iter()
        .map(|file| dir.join(file))
        .filter(|path| path.exists())
        .collect();
    if !existing.is_empty() && !force {
        eprintln!(
            "error: {} already holds a CA ({}); replacing it would orphan every certificate it \
             issued. Pass --force to replace it anyway.",
            dir.display(),
            existing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Exit::Trouble;
    }
    let written = Ca::generate(name).and_then(|ca| ca.write(dir).map(|()| ca));
    match written {
        Ok(ca) => {
            eprintln!(
                "created CA {name:?} in {} ({CA_CERT_FILE}, {CA_KEY_FILE} mode 0600), valid until {}",
                dir.display(),
                rfc3339(ca.not_after())
            );
            Exit::Ok
        }
        Err(err) => {
            eprintln!("error: {err}");
            Exit::Trouble
        }
    }
}

/// What `meshc identity issue` is asked for.
pub struct Issue<'a> {
    /// The CA directory.
    pub ca: &'a Path,
    /// `spiffe://TRUST_DOMAIN/...`.
    pub trust_domain: &'a str,
    /// The workload's namespace.
    pub namespace: &'a str,
    /// The workload's service account.
    pub service_account: &'a str,
    /// How long the certificate is valid, e.g. `24h`.
    pub ttl: &'a str,
    /// Where cert.pem, key.pem and ca.pem go.
    pub out: &'a Path,
}

/// `meshc identity issue --ca DIR --trust-domain TD --namespace NS --service-account SA
/// [--ttl 24h] -o DIR`.
pub fn issue(args: &Issue<'_>) -> Exit {
    let ttl = match parse_ttl(args.ttl) {
        Ok(ttl) => ttl,
        Err(problem) => {
            eprintln!("error: --ttl: {problem}");
            return Exit::Trouble;
        }
    };
    let id = match SpiffeId::new(args.trust_domain, args.namespace, args.service_account) {
        Ok(id) => id,
        Err(err) => {
            eprintln!("error: {err}");
            return Exit::Trouble;
        }
    };
    let issued = Ca::load(args.ca)
        .and_then(|ca| {
            if ca.not_after() < SystemTime::now() + ttl {
                eprintln!(
                    "warning: the CA expires at {}, before the certificate's requested end",
                    rfc3339(ca.not_after())
                );
            }
            ca.issue(&id, ttl)
        })
        .and_then(|issued| issued.write(args.out).map(|()| issued));
    match issued {
        Ok(issued) => {
            eprintln!(
                "issued {id} into {} ({CERT_FILE}, {KEY_FILE} mode 0600, {CA_CERT_FILE}), valid until {}",
                args.out.display(),
                rfc3339(issued.not_after())
            );
            Exit::Ok
        }
        Err(err) => {
            eprintln!("error: {err}");
            Exit::Trouble
        }
    }
}

/// `90s`, `30m`, `24h`, `90d`: a certificate lifetime, at least a minute.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (s, m, h, d)"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a number"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit `{unit}` in `{text}` (s, m, h, d)")),
    };
    let ttl = Duration::from_secs(n.saturating_mul(seconds));
    if ttl < Duration::from_secs(60) {
        return Err(format!("`{text}` is shorter than a minute"));
    }
    Ok(ttl)
}

/// `2026-11-25T22:35:03Z`.
fn rfc3339(time: SystemTime) -> String {
    time::OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "an unrepresentable time".into())
}
