//! Ingress gateways (`mesh-agent --gateway NAME`): the agent runs a workload whose config
//! has a `gateway` section, serving that section's listeners to clients outside the mesh
//! instead of a sidecar's outbound and inbound listeners. Requests are routed by host and
//! the host's rules (`mesh-config`'s `gateway_host` and `gateway_route`) and then go down
//! the same outbound layers as a sidecar's requests, over mTLS as the gateway's identity.
//!
//! - [`check_mode`]: a config is a gateway's exactly when the agent runs as that gateway
//!   (checked at start and on every reload);
//! - [`listener`]: binding the listeners and accepting plain or TLS connections;
//! - [`certs`]: the TLS listeners' certificates, chosen per handshake by SNI and reloaded
//!   when their files change;
//! - [`route`]: turning a client's request into a routed call.

pub mod certs;
pub mod listener;
pub mod route;

use std::net::SocketAddr;

use mesh_config::Config;

/// Why a config cannot run in the agent's mode (sidecar, or gateway NAME).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    /// `--gateway NAME` with a config that has no gateway section.
    #[error(
        "`--gateway {wanted}` but the config has no gateway section (it is workload `{service}`'s sidecar config)"
    )]
    NotAGateway {
        /// The gateway asked for.
        wanted: String,
        /// The config's workload.
        service: String,
    },
    /// `--gateway NAME` with another gateway's config.
    #[error("`--gateway {wanted}` but the config is gateway `{found}`'s")]
    OtherGateway {
        /// The gateway asked for.
        wanted: String,
        /// The config's gateway.
        found: String,
    },
    /// A gateway's config without `--gateway`: a sidecar must not become a gateway.
    #[error("the config is gateway `{found}`'s: run it with `--gateway {found}`")]
    UnexpectedGateway {
        /// The config's gateway.
        found: String,
    },
}

/// Whether `config` may run in the mode `gateway` names (`None`: a sidecar).
pub fn check_mode(config: &Config, gateway: Option<&str>) -> Result<(), ModeError> {
    match (gateway, config.gateway()) {
        (None, None) => Ok(()),
        (Some(wanted), Some(found)) if found.name == wanted => Ok(()),
        (Some(wanted), Some(found)) => Err(ModeError::OtherGateway {
            wanted: wanted.to_string(),
            found: found.name.clone(),
        }),
        (Some(wanted), None) => Err(ModeError::NotAGateway {
            wanted: wanted.to_string(),
            service: config.source().workload.service.clone(),
        }),
        (None, Some(found)) => Err(ModeError::UnexpectedGateway {
            found: found.name.clone(),
        }),
    }
}

/// A gateway listener as bound: its config port, whether it terminates TLS (as the
/// config said at start), and where it listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BoundListener {
    /// The listener's port in the config.
    pub port: u16,
    /// Whether the config gave it a certificate when it was bound.
    pub tls: bool,
    /// The address it listens on.
    pub address: SocketAddr,
}

/// What the admin `/gateway` endpoint reports: the gateway's name and listeners.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GatewayInfo {
    /// The gateway's name.
    pub name: String,
    /// Its listeners, in config order.
    pub listeners: Vec<BoundListener>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(gateway: Option<&str>) -> Config {
        let mut value = json!({
            "version": 1,
            "mesh": {"name": "test", "trust_domain": "cluster.local"},
            "workload": {
                "service": "ns/ingress",
                "identity": "spiffe://cluster.local/ns/ns/sa/ingress",
                "ports": []
            },
            "inbound": {"mtls": "strict", "authz": {"kind": "deny_all"}},
            "outbound": {"egress": "deny", "services": []}
        });
        if let Some(name) = gateway {
            value["gateway"] = json!({
                "name": name,
                "listeners": [{"port": 8080, "tls": null}],
                "hosts": []
            });
        }
        match Config::from_json(value.to_string().as_bytes()) {
            Ok(config) => config,
            Err(error) => panic!("test config: {error}"),
        }
    }

    #[test]
    fn a_config_runs_only_in_its_own_mode() {
        assert_eq!(check_mode(&config(None), None), Ok(()));
        assert_eq!(check_mode(&config(Some("public")), Some("public")), Ok(()));
        let errors = [
            check_mode(&config(None), Some("public")),
            check_mode(&config(Some("other")), Some("public")),
            check_mode(&config(Some("public")), None),
        ]
        .map(|r| r.err().map(|e| e.to_string()).unwrap_or_default());
        assert!(errors[0].contains("no gateway section"), "{}", errors[0]);
        assert!(errors[1].contains("gateway `other`'s"), "{}", errors[1]);
        assert!(errors[2].contains("--gateway public"), "{}", errors[2]);
    }
}
