//! The OTLP resource: which service the sidecar's spans belong to.
//!
//! `service.name` comes from the configuration's `serviceName`, else the VM
//! environment's `OTEL_SERVICE_NAME`, else Istio's node metadata
//! (`WORKLOAD_NAME`, then the `app` label), else `unknown_service`.
//!
//! Node metadata is read as `node.metadata.*` (Istio's proxy) and, failing
//! that, `xds.node.metadata.*` (upstream Envoy).

use crate::host::Host;

pub const SDK_NAME: &str = "meshtrace";

/// Reads what identifies the workload, once, when the plugin is configured.
pub fn attributes(
    configured_name: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    host: &dyn Host,
) -> Vec<(&'static str, String)> {
    let node = |path: &[&str]| {
        let istio: Vec<&str> = ["node", "metadata"].iter().chain(path).copied().collect();
        let envoy: Vec<&str> = ["xds", "node", "metadata"]
            .iter()
            .chain(path)
            .copied()
            .collect();
        host.property_string(&istio)
            .or_else(|| host.property_string(&envoy))
    };
    let meta = |key: &str| node(&[key]);
    let label = |key: &str| node(&["LABELS", key]);
    let service = configured_name
        .map(str::to_string)
        .or_else(|| env("OTEL_SERVICE_NAME").filter(|s| !s.is_empty()))
        .or_else(|| meta("WORKLOAD_NAME"))
        .or_else(|| label("app"))
        .unwrap_or_else(|| "unknown_service".to_string());
    let mut attrs = vec![("service.name", service)];
    let version = label("service.istio.io/canonical-revision")
        .or_else(|| label("version"))
        .or_else(|| label("app.kubernetes.io/version"));
    if let Some(v) = version {
        attrs.push(("service.version", v));
    }
    if let Some(ns) = meta("NAMESPACE") {
        attrs.push(("k8s.namespace.name", ns));
    }
    if let Some(pod) = meta("NAME") {
        attrs.push(("k8s.pod.name", pod));
    }
    attrs.push(("telemetry.sdk.name", SDK_NAME.to_string()));
    attrs.push(("telemetry.sdk.language", "rust".to_string()));
    attrs.push((
        "telemetry.sdk.version",
        env!("CARGO_PKG_VERSION").to_string(),
    ));
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mock::MockHost;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn name(attrs: &[(&str, String)]) -> String {
        attrs
            .iter()
            .find(|(k, _)| *k == "service.name")
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    #[test]
    fn service_name_precedence() {
        let host = MockHost::with_headers(&[]);
        let no_env = |_: &str| None;
        let env = |k: &str| (k == "OTEL_SERVICE_NAME").then(|| "from-env".to_string());
        assert_eq!(name(&attributes(None, &no_env, &host)), "unknown_service");
        host.set_property("node.metadata.LABELS.app", b"from-label");
        assert_eq!(name(&attributes(None, &no_env, &host)), "from-label");
        host.set_property("node.metadata.WORKLOAD_NAME", b"from-workload");
        assert_eq!(name(&attributes(None, &no_env, &host)), "from-workload");
        assert_eq!(name(&attributes(None, &env, &host)), "from-env");
        assert_eq!(
            name(&attributes(Some("configured"), &env, &host)),
            "configured"
        );
    }

    #[test]
    fn kubernetes_attributes_from_node_metadata() {
        let host = MockHost::with_headers(&[]);
        host.set_property("xds.node.metadata.NAMESPACE", b"shop");
        host.set_property("node.metadata.NAME", b"cart-7d9f");
        host.set_property("node.metadata.LABELS.version", b"v2");
        let attrs = attributes(Some("cart"), &|_| None, &host);
        assert!(attrs.contains(&("k8s.namespace.name", "shop".into())));
        assert!(attrs.contains(&("k8s.pod.name", "cart-7d9f".into())));
        assert!(attrs.contains(&("service.version", "v2".into())));
        assert!(attrs.contains(&("telemetry.sdk.name", "meshtrace".into())));
    }
}
