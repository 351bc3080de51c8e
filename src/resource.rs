//! The OTLP resource: which service, and which Kubernetes objects, the
//! sidecar's spans belong to. Read once, when the plugin is configured.
//!
//! `service.name` is the configuration's `serviceName`, else the VM
//! environment's `OTEL_SERVICE_NAME`, else `service.name` in
//! `OTEL_RESOURCE_ATTRIBUTES`, else Istio's canonical service: the
//! `service.istio.io/canonical-name`, `app.kubernetes.io/name` or `app`
//! label, then `WORKLOAD_NAME` (Istio's own order, so names match what its
//! telemetry reports), else `unknown_service`. `service.version` is Istio's
//! canonical revision (`service.istio.io/canonical-revision`,
//! `app.kubernetes.io/version` or `version` label).
//!
//! From node metadata, per the Kubernetes resource conventions:
//! `k8s.namespace.name` (`NAMESPACE`), `k8s.pod.name` (`NAME`),
//! `k8s.node.name` (`NODE_NAME`), `k8s.cluster.name` (`CLUSTER_ID`) and the
//! owning workload, `k8s.deployment.name` and its siblings (from `OWNER`,
//! `kubernetes://apis/apps/v1/namespaces/{ns}/deployments/{name}`).
//! `OTEL_RESOURCE_ATTRIBUTES` (`key=value,...`, values percent-encoded) is
//! merged over them: what an operator configures wins over what is detected.
//!
//! Node metadata is read as `node.metadata.*` (Istio's proxy) and, failing
//! that, `xds.node.metadata.*` (upstream Envoy).

use crate::host::Host;

pub const SDK_NAME: &str = "meshtrace";
pub use meshtrace_core::semconv::SERVICE_NAME;

/// Istio's canonical service name labels, in its order.
const NAME_LABELS: [&str; 3] = [
    "service.istio.io/canonical-name",
    "app.kubernetes.io/name",
    "app",
];
/// Istio's canonical revision labels, in its order.
const REVISION_LABELS: [&str; 3] = [
    "service.istio.io/canonical-revision",
    "app.kubernetes.io/version",
    "version",
];

/// Workload kinds in an Istio `OWNER` (plural, lower-case) and their
/// resource attribute.
const OWNER_KINDS: [(&str, &str); 6] = [
    ("deployments", "k8s.deployment.name"),
    ("statefulsets", "k8s.statefulset.name"),
    ("daemonsets", "k8s.daemonset.name"),
    ("replicasets", "k8s.replicaset.name"),
    ("jobs", "k8s.job.name"),
    ("cronjobs", "k8s.cronjob.name"),
];

/// Attributes not to be overridden by `OTEL_RESOURCE_ATTRIBUTES`: they say
/// what produced the spans.
const SDK_ATTRIBUTES: [&str; 3] = [
    "telemetry.sdk.name",
    "telemetry.sdk.language",
    "telemetry.sdk.version",
];

/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value` pairs, comma-separated, values
/// percent-decoded. Any error discards the whole value, as the
/// OpenTelemetry specification asks.
pub fn parse_env_attributes(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in value.split(',') {
        if pair.trim().is_empty() {
            continue;
        }
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not key=value"))?;
        let key = k.trim();
        if key.is_empty() {
            return Err(format!("`{pair}` has an empty key"));
        }
        let value = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| format!("the value of `{key}` is not UTF-8 once decoded"))?;
        out.retain(|(k, _): &(String, String)| k != key);
        out.push((key.to_string(), value.into_owned()));
    }
    Ok(out)
}

/// The workload attribute of an Istio `OWNER`.
fn owner(owner: &str) -> Option<(&'static str, String)> {
    let mut parts = owner.rsplit('/');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let kind = parts.next()?;
    OWNER_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, attr)| (*attr, name.to_string()))
}

/// A node metadata value: Istio's proxy has it as `node.metadata.*`,
/// upstream Envoy as `xds.node.metadata.*`. Its own function: inlined
/// at each of its callers it made [`attributes`] one of the module's largest
/// functions (V8 compiles every one when Envoy loads the module, with memory
/// that grows with the function's size: bench/BUDGET.md, "Resident memory").
#[inline(never)]
fn node_metadata(host: &dyn Host, path: &[&str]) -> Option<String> {
    let mut full: Vec<&str> = Vec::with_capacity(path.len() + 3);
    full.extend(["xds", "node", "metadata"]);
    full.extend_from_slice(path);
    host.property_string(full.get(1..).unwrap_or_default())
        .or_else(|| host.property_string(&full))
}

/// The resource attributes, `service.name` first.
pub fn attributes(
    configured_name: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
    host: &dyn Host,
) -> Vec<(String, String)> {
    let meta = |key: &str| node_metadata(host, &[key]);
    let label = |key: &str| node_metadata(host, &["LABELS", key]);
    let from_env = match env("OTEL_RESOURCE_ATTRIBUTES").filter(|v| !v.trim().is_empty()) {
        Some(v) => parse_env_attributes(&v).unwrap_or_else(|reason| {
            log::warn!("meshtrace: OTEL_RESOURCE_ATTRIBUTES ignored: {reason}");
            Vec::new()
        }),
        None => Vec::new(),
    };
    let env_attr = |key: &str| {
        from_env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let service = configured_name
        .map(str::to_string)
        .or_else(|| env("OTEL_SERVICE_NAME").filter(|s| !s.is_empty()))
        .or_else(|| env_attr(SERVICE_NAME).filter(|s| !s.is_empty()))
        .or_else(|| NAME_LABELS.iter().find_map(|l| label(l)))
        .or_else(|| meta("WORKLOAD_NAME"))
        .unwrap_or_else(|| "unknown_service".to_string());

    let mut attrs: Vec<(String, String)> = vec![(SERVICE_NAME.into(), service)];
    let mut detected = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            attrs.push((k.to_string(), v));
        }
    };
    detected(
        "service.version",
        REVISION_LABELS.iter().find_map(|l| label(l)),
    );
    detected("k8s.namespace.name", meta("NAMESPACE"));
    detected("k8s.pod.name", meta("NAME"));
    detected("k8s.node.name", meta("NODE_NAME"));
    detected("k8s.cluster.name", meta("CLUSTER_ID"));
    if let Some((k, v)) = meta("OWNER").as_deref().and_then(owner) {
        detected(k, Some(v));
    }
    for (k, v) in from_env {
        if k == SERVICE_NAME || SDK_ATTRIBUTES.contains(&k.as_str()) {
            continue;
        }
        match attrs.iter_mut().find(|(key, _)| *key == k) {
            Some(existing) => existing.1 = v,
            None => attrs.push((k, v)),
        }
    }
    attrs.push(("telemetry.sdk.name".into(), SDK_NAME.to_string()));
    attrs.push(("telemetry.sdk.language".into(), "rust".to_string()));
    attrs.push((
        "telemetry.sdk.version".into(),
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

    fn get(attrs: &[(String, String)], key: &str) -> Option<String> {
        attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }

    fn name(attrs: &[(String, String)]) -> String {
        get(attrs, SERVICE_NAME).unwrap()
    }

    #[test]
    fn service_name_precedence() {
        let host = MockHost::with_headers(&[]);
        let no_env = |_: &str| None;
        let res_env = |k: &str| {
            (k == "OTEL_RESOURCE_ATTRIBUTES").then(|| "service.name=from-resource".to_string())
        };
        let env = |k: &str| match k {
            "OTEL_SERVICE_NAME" => Some("from-env".to_string()),
            "OTEL_RESOURCE_ATTRIBUTES" => Some("service.name=from-resource".to_string()),
            _ => None,
        };
        assert_eq!(name(&attributes(None, &no_env, &host)), "unknown_service");
        host.set_property("node.metadata.WORKLOAD_NAME", b"from-workload");
        assert_eq!(name(&attributes(None, &no_env, &host)), "from-workload");
        host.set_property("node.metadata.LABELS.app", b"from-app");
        assert_eq!(
            name(&attributes(None, &no_env, &host)),
            "from-app",
            "Istio's order: labels before the workload name"
        );
        host.set_property(
            "node.metadata.LABELS.app.kubernetes.io/name",
            b"from-k8s-name",
        );
        assert_eq!(name(&attributes(None, &no_env, &host)), "from-k8s-name");
        host.set_property(
            "node.metadata.LABELS.service.istio.io/canonical-name",
            b"from-canonical",
        );
        assert_eq!(name(&attributes(None, &no_env, &host)), "from-canonical");
        assert_eq!(name(&attributes(None, &res_env, &host)), "from-resource");
        assert_eq!(name(&attributes(None, &env, &host)), "from-env");
        assert_eq!(
            name(&attributes(Some("configured"), &env, &host)),
            "configured"
        );
    }

    #[test]
    fn version_follows_istios_canonical_revision() {
        let host = MockHost::with_headers(&[]);
        let v = |host: &MockHost| get(&attributes(None, &|_| None, host), "service.version");
        assert_eq!(v(&host), None);
        host.set_property("node.metadata.LABELS.version", b"v1");
        assert_eq!(v(&host).as_deref(), Some("v1"));
        host.set_property("node.metadata.LABELS.app.kubernetes.io/version", b"1.2.0");
        assert_eq!(v(&host).as_deref(), Some("1.2.0"));
        host.set_property(
            "node.metadata.LABELS.service.istio.io/canonical-revision",
            b"canary",
        );
        assert_eq!(v(&host).as_deref(), Some("canary"));
    }

    #[test]
    fn kubernetes_attributes_from_node_metadata() {
        let host = MockHost::with_headers(&[]);
        host.set_property("xds.node.metadata.NAMESPACE", b"shop");
        host.set_property("node.metadata.NAME", b"cart-7d9f");
        host.set_property("node.metadata.NODE_NAME", b"node-3");
        host.set_property("node.metadata.CLUSTER_ID", b"east");
        host.set_property(
            "node.metadata.OWNER",
            b"kubernetes://apis/apps/v1/namespaces/shop/deployments/cart",
        );
        let attrs = attributes(Some("cart"), &|_| None, &host);
        for (k, v) in [
            ("k8s.namespace.name", "shop"),
            ("k8s.pod.name", "cart-7d9f"),
            ("k8s.node.name", "node-3"),
            ("k8s.cluster.name", "east"),
            ("k8s.deployment.name", "cart"),
            ("telemetry.sdk.name", "meshtrace"),
        ] {
            assert_eq!(get(&attrs, k).as_deref(), Some(v), "{k}");
        }
    }

    #[test]
    fn owners_of_every_workload_kind() {
        let rows = [
            (
                "kubernetes://apis/apps/v1/namespaces/ns/deployments/web",
                Some(("k8s.deployment.name", "web")),
            ),
            (
                "kubernetes://apis/apps/v1/namespaces/ns/statefulsets/db",
                Some(("k8s.statefulset.name", "db")),
            ),
            (
                "kubernetes://apis/apps/v1/namespaces/ns/daemonsets/agent",
                Some(("k8s.daemonset.name", "agent")),
            ),
            (
                "kubernetes://apis/batch/v1/namespaces/ns/cronjobs/nightly",
                Some(("k8s.cronjob.name", "nightly")),
            ),
            (
                "kubernetes://apis/batch/v1/namespaces/ns/jobs/once",
                Some(("k8s.job.name", "once")),
            ),
            ("kubernetes://apis/v1/namespaces/ns/pods/bare", None),
            ("kubernetes://apis/apps/v1/namespaces/ns/deployments/", None),
            ("", None),
        ];
        for (o, want) in rows {
            assert_eq!(owner(o), want.map(|(k, v)| (k, v.to_string())), "{o}");
        }
    }

    #[test]
    fn resource_attributes_from_the_environment_win_over_detected_ones() {
        let host = MockHost::with_headers(&[]);
        host.set_property("node.metadata.NAMESPACE", b"detected");
        let env = |k: &str| {
            (k == "OTEL_RESOURCE_ATTRIBUTES").then(|| {
                " deployment.environment.name = prod%20eu ,k8s.namespace.name=configured,\
                 telemetry.sdk.name=nope,team=a%2Cb"
                    .to_string()
            })
        };
        let attrs = attributes(Some("svc"), &env, &host);
        assert_eq!(name(&attrs), "svc", "the configuration wins");
        assert_eq!(
            get(&attrs, "deployment.environment.name").as_deref(),
            Some("prod eu"),
            "trimmed and percent-decoded"
        );
        assert_eq!(
            get(&attrs, "k8s.namespace.name").as_deref(),
            Some("configured")
        );
        assert_eq!(get(&attrs, "team").as_deref(), Some("a,b"));
        assert_eq!(
            get(&attrs, "telemetry.sdk.name").as_deref(),
            Some("meshtrace")
        );
        assert_eq!(
            attrs
                .iter()
                .filter(|(k, _)| k == "k8s.namespace.name")
                .count(),
            1,
            "no duplicate keys"
        );
    }

    #[test]
    fn a_malformed_environment_value_is_discarded_whole() {
        for bad in ["a=1,b", "=1", "a=%ff"] {
            assert!(parse_env_attributes(bad).is_err(), "{bad}");
        }
        let host = MockHost::with_headers(&[]);
        let env = |k: &str| (k == "OTEL_RESOURCE_ATTRIBUTES").then(|| "a=1,broken".to_string());
        let attrs = attributes(None, &env, &host);
        assert_eq!(get(&attrs, "a"), None);
        assert_eq!(
            parse_env_attributes("a=1,,a=2").unwrap(),
            vec![("a".to_string(), "2".to_string())],
            "empty pairs skipped, the last value of a key wins"
        );
    }
}
