//! The files a local mesh runs on, in one throwaway directory: the compiled configs
//! (`config/NS/NAME.json`), an endpoints file listing every workload's inbound address
//! with its labels, a fresh CA and one certificate per identity (`identity/NS/SA/`,
//! gateways' included), and a log file per process (`logs/`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mesh_identity::{Ca, SpiffeId};

use super::plan::{Gateway, Plan, Workload};

/// How long `meshc up` certificates are valid: longer than any local session.
const CERT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where everything of one `meshc up` lives.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The root of the directory.
    pub root: PathBuf,
}

impl Layout {
    /// The config directory (what `meshc compile -o` would write).
    pub fn configs(&self) -> PathBuf {
        self.root.join("config")
    }

    /// A workload's config file.
    pub fn config(&self, workload: &Workload) -> PathBuf {
        self.configs().join(&workload.config)
    }

    /// The endpoints file every agent reads.
    pub fn endpoints(&self) -> PathBuf {
        self.root.join("endpoints.json")
    }

    /// A workload's identity directory (shared by the subsets of a service).
    pub fn identity(&self, workload: &Workload) -> PathBuf {
        self.identity_of(&workload.identity)
    }

    /// The identity directory of SPIFFE id `id`.
    pub fn identity_of(&self, id: &str) -> PathBuf {
        let slug = id.trim_start_matches("spiffe://").replace('/', ".");
        self.root.join("identity").join(slug)
    }

    /// A gateway's config file.
    pub fn gateway_config(&self, gateway: &Gateway) -> PathBuf {
        self.configs().join(&gateway.config)
    }

    /// A gateway agent's log file.
    pub fn gateway_log(&self, gateway: &Gateway) -> PathBuf {
        self.root
            .join("logs")
            .join(format!("{}.agent.log", gateway.slug()))
    }

    /// A process's log file.
    pub fn log(&self, workload: &Workload, what: &str) -> PathBuf {
        self.root
            .join("logs")
            .join(format!("{}.{what}.log", workload.slug()))
    }
}

/// Writes the configs, the endpoints file, the CA and every identity.
pub fn write_all(
    layout: &Layout,
    plan: &Plan,
    configs: &BTreeMap<String, String>,
) -> Result<(), String> {
    write_configs(layout, configs)?;
    std::fs::create_dir_all(layout.root.join("logs"))
        .map_err(|e| format!("cannot create {}: {e}", layout.root.join("logs").display()))?;
    write_endpoints(&layout.endpoints(), plan)?;
    let ca = Ca::generate(&format!("meshc up CA for {}", plan.mesh)).map_err(|e| e.to_string())?;
    ca.write(&layout.root.join("ca"))
        .map_err(|e| e.to_string())?;
    let identities = plan
        .workloads
        .iter()
        .map(|w| &w.identity)
        .chain(plan.gateways.iter().map(|g| &g.identity));
    for identity in identities {
        let dir = layout.identity_of(identity);
        if dir.exists() {
            continue;
        }
        let id = SpiffeId::parse(identity).map_err(|e| e.to_string())?;
        ca.issue(&id, CERT_TTL)
            .and_then(|issued| issued.write(&dir))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Writes every compiled file under the config directory; returns how many changed.
pub fn write_configs(layout: &Layout, configs: &BTreeMap<String, String>) -> Result<usize, String> {
    let mut changed = 0;
    for (relative, text) in configs {
        let path = layout.configs().join(relative);
        changed += usize::from(
            super::super::compile::write_if_changed(&path, text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        );
    }
    Ok(changed)
}

fn write_endpoints(path: &Path, plan: &Plan) -> Result<(), String> {
    let endpoints: Vec<_> = plan
        .workloads
        .iter()
        .map(|w| {
            serde_json::json!({
                "service": w.service,
                "address": w.ports.inbound.to_string(),
                "labels": w.labels,
            })
        })
        .collect();
    let services: Vec<_> = plan
        .services
        .iter()
        .map(|s| serde_json::json!({ "service": s.service, "addresses": [s.ip.to_string()] }))
        .collect();
    let text = serde_json::to_string_pretty(&serde_json::json!({
        "endpoints": endpoints,
        "services": services,
    }))
    .map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}
