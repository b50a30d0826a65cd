//! Authorization that fails closed, end to end: a real `mesh-agent` whose policy set has a
//! policy that cannot be evaluated (it reads a header its context does not carry). Cedar
//! alone would skip that policy and let the other one allow; the agent answers `403` with
//! `mesh-error: policy-error`, never reaches the app, and counts the decision as
//! `decision="error"` on `/metrics`. In audit mode the request goes through and is counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::json;
use support::*;

const POLICIES: &str = r#"@id("broken")
permit (principal, action, resource)
when { context.headers["x-not-listed"] == "1" };

@id("anyone")
permit (principal, action, resource);
"#;

async fn agent_with(mode: &str, app: &Upstream) -> (Agent, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut value = config(vec![]);
    value["inbound"]["authz"] = json!({
        "kind": "cedar", "mode": mode, "policies": POLICIES,
        "headers": [], "query": [], "patterns": []
    });
    write(dir.path(), "config.json", &value);
    write(dir.path(), "endpoints.json", &endpoints(&[]));
    (Agent::start(dir.path(), app.addr), dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_that_fails_to_evaluate_denies_with_policy_error() {
    let app = Upstream::start("app").await;
    let (agent, _dir) = agent_with("enforce", &app).await;
    let http = Http::default();
    let got = http.get(agent.inbound, "client", "/hello").await;
    assert_eq!(got.status, 403, "{got:?}");
    assert_eq!(got.headers["mesh-error"], "policy-error");
    assert!(
        got.body.contains("policy broken failed to evaluate"),
        "{got:?}"
    );
    assert_eq!(
        app.hits(),
        0,
        "a failed authorization never reaches the app"
    );
    let metrics = http.get(agent.admin, "admin", "/metrics").await.body;
    let line = r#"mesh_authz_decisions_total{decision="error",mode="enforce",policy="broken"} 1"#;
    assert!(metrics.contains(line), "missing {line} in\n{metrics}");

    // Audit mode makes the same decision, lets the request through and counts it.
    let (audit, _audit_dir) = agent_with("audit", &app).await;
    let got = http.get(audit.inbound, "client", "/hello").await;
    assert_eq!((got.status, got.name()), (200, "app".into()));
    let metrics = http.get(audit.admin, "admin", "/metrics").await.body;
    let line = r#"mesh_authz_decisions_total{decision="error",mode="audit",policy="broken"} 1"#;
    assert!(metrics.contains(line), "missing {line} in\n{metrics}");
}
