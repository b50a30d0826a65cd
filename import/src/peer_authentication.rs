//! Istio PeerAuthentication → the mesh's `mtls` mode. The language has one mode for the
//! whole mesh (`strict` by default), so STRICT anywhere needs nothing, PERMISSIVE in the
//! root namespace without a selector makes the mesh `mtls permissive`, and every other
//! setting is reported.

use crate::authorization::ROOT_NAMESPACE;
use crate::model::Mesh;
use crate::object::Object;

/// Translates one PeerAuthentication into `mesh`. Mesh-wide ones go first (see
/// [`is_mesh_wide`]), so that a later stricter one is reported rather than ignored.
pub fn translate(obj: &Object<'_>, mesh: &mut Mesh) {
    let spec = obj.spec();
    let Some(f) = spec.fields() else { return };
    let selector = f.take("selector");
    let mode = f.take("mtls").and_then(|m| {
        m.at()
            .fields()
            .and_then(|mf| mf.take("mode").map(|x| (x, mf)))
    });
    if let Some((mode_field, _mf)) = &mode
        && let Some(word) = mode_field.at().str()
    {
        let mesh_wide = obj.namespace == ROOT_NAMESPACE && selector.is_none();
        match word.as_str() {
            "STRICT" if mesh.permissive.is_some() => mode_field.at().not_expressible(
                "the language has one mTLS mode for the whole mesh, and a mesh-wide \
                 PeerAuthentication made it permissive",
            ),
            "STRICT" | "UNSET" => {}
            "PERMISSIVE" if mesh_wide => {
                mesh.permissive = Some(format!("from {}: mtls PERMISSIVE", obj.ctx.object));
            }
            "PERMISSIVE" => mode_field.at().not_expressible(
                "mTLS modes per namespace or workload are not expressible: the language has \
                 one mode for the whole mesh (a PERMISSIVE PeerAuthentication in istio-system \
                 without a selector sets it)",
            ),
            "DISABLE" => mode_field.at().not_expressible(
                "turning mTLS off is not expressible: the mesh always accepts mTLS",
            ),
            other => mode_field
                .at()
                .bad_value(&format!("{other:?} is not an mTLS mode Istio knows")),
        }
    }
    f.not_expressible("portLevelMtls", "mTLS modes per port are not expressible");
}

/// Whether a PeerAuthentication applies to the whole mesh (translated first).
pub fn is_mesh_wide(obj: &Object<'_>) -> bool {
    obj.namespace == ROOT_NAMESPACE
        && !matches!(&obj.spec().node.value, crate::yaml::Value::Map(e) if e.iter().any(|(k, _)| k.scalar_text().as_deref() == Some("selector")))
}
