//! The sidecar injector's decision, as a mutating admission webhook makes it: an
//! `AdmissionReview` (v1) in, an `AdmissionReview` with the response out. A pod created in
//! a namespace labelled [`NAMESPACE_LABEL`]`=enabled` (the webhook configuration's
//! `namespaceSelector`; see [`crate::manifests`]) gets exactly what `meshc inject` adds,
//! as an RFC 6902 JSON patch, unless it opts out with the [`OPT_OUT`] annotation or label
//! set to `disabled`. A pod already injected with the same image and mode is left alone;
//! a pod whose service account is not an identity of the mesh is refused with the reason
//! (it could never get a certificate, so it could never be meshed).
//!
//! Serving this over TLS is `meshc webhook`'s job; this module has no I/O, so every answer
//! can be tested without a cluster.

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

use crate::inject::{self, INJECTED, MODE, Options};
use crate::input::MeshInput;

/// The namespace label that turns injection on (`enabled`).
pub const NAMESPACE_LABEL: &str = "mesh/inject";
/// A pod annotation or label that turns injection off for the pod (`disabled`).
pub const OPT_OUT: &str = "mesh/inject";

/// Why a request body is not an admission review this webhook can answer: the API server
/// should get `400 Bad Request` with this text.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON of an `AdmissionReview`.
    #[error("the body is not an AdmissionReview: {0}")]
    Body(#[from] serde_json::Error),
    /// An `AdmissionReview` without a request.
    #[error("the AdmissionReview has no request")]
    NoRequest,
    /// Serializing the answer failed.
    #[error("cannot write the answer: {0}")]
    Answer(String),
}

/// What the webhook decided for one review, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The pod gets the sidecar: the patch has this many operations.
    Injected(usize),
    /// Allowed unchanged, and why.
    Skipped(&'static str),
    /// Refused, with the reason the API server shows the user.
    Refused(String),
}

/// Answers the `AdmissionReview` in `body`: the review to send back (JSON) and what was
/// decided.
pub fn review(
    body: &[u8],
    mesh: &MeshInput,
    options: &Options,
) -> Result<(Vec<u8>, Outcome), ReviewError> {
    let review: AdmissionReview<DynamicObject> = serde_json::from_slice(body)?;
    let request: AdmissionRequest<DynamicObject> =
        review.try_into().map_err(|_| ReviewError::NoRequest)?;
    let (response, outcome) = decide(&request, mesh, options);
    let answer = serde_json::to_vec(&response.into_review())
        .map_err(|e| ReviewError::Answer(e.to_string()))?;
    Ok((answer, outcome))
}

fn decide(
    request: &AdmissionRequest<DynamicObject>,
    mesh: &MeshInput,
    options: &Options,
) -> (AdmissionResponse, Outcome) {
    let allowed = AdmissionResponse::from(request);
    let skip = |why: &'static str| (AdmissionResponse::from(request), Outcome::Skipped(why));
    if !request.kind.group.is_empty() || request.kind.kind != "Pod" {
        return skip("not a pod");
    }
    if request.operation != Operation::Create {
        return skip("not a creation");
    }
    let Some(object) = &request.object else {
        return skip("no object");
    };
    let mut original = match serde_json::to_value(object) {
        Ok(value) => value,
        Err(e) => return refuse(allowed, format!("the pod cannot be read: {e}")),
    };
    let metadata = &original["metadata"];
    if [&metadata["annotations"], &metadata["labels"]]
        .iter()
        .any(|map| map[OPT_OUT].as_str() == Some("disabled"))
    {
        return skip("opted out");
    }
    if metadata["annotations"][INJECTED].as_str() == Some(options.image.as_str())
        && metadata["annotations"][MODE].as_str() == Some(options.mode.as_str())
    {
        return skip("already injected");
    }
    // A pod made from a template has no namespace of its own yet: the request says which.
    let filled = original["metadata"]["namespace"].is_null();
    if filled && let Some(namespace) = &request.namespace {
        original["metadata"]["namespace"] = serde_json::Value::String(namespace.clone());
    }
    let injected = match inject::inject_pod_object(original.clone(), mesh, options) {
        Ok(value) => value,
        Err(e) => return refuse(allowed, e.to_string()),
    };
    let patch = json_patch::diff(&original, &injected);
    let operations = patch.0.len();
    match allowed.with_patch(patch) {
        Ok(response) => (response, Outcome::Injected(operations)),
        Err(e) => refuse(
            AdmissionResponse::from(request),
            format!("cannot write the patch: {e}"),
        ),
    }
}

fn refuse(response: AdmissionResponse, reason: String) -> (AdmissionResponse, Outcome) {
    let reason = format!("mesh sidecar injection: {reason}");
    (response.deny(&reason), Outcome::Refused(reason))
}
