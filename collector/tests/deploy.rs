//! The alert rules and the Grafana dashboard in `collector/deploy/` only use metrics the collector exports:
//! every expression must parse (balanced brackets, closed strings) and every metric name it mentions must
//! appear on a running collector's `/metrics`. A small PromQL-aware scan, no promtool.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;

use common::*;

const KEYWORDS: [&str; 12] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "and",
    "or",
    "unless",
    "bool",
    "inf",
];
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names an expression uses, or why it does not parse.
fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    // Grafana variables are not PromQL.
    let mut text = String::new();
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            if chars.peek() == Some(&'{') {
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
            } else {
                while chars
                    .peek()
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                {
                    chars.next();
                }
            }
            text.push('1');
            continue;
        }
        text.push(c);
    }
    // Strings, label matchers and ranges are removed; brackets must balance.
    let mut out = String::new();
    let mut stack = Vec::new();
    let mut in_string: Option<char> = None;
    for c in text.chars() {
        if let Some(q) = in_string {
            if c == q {
                in_string = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => in_string = Some(c),
            '(' | '{' | '[' => {
                stack.push(c);
                if c == '(' {
                    out.push(c);
                }
            }
            ')' | '}' | ']' => {
                let open = stack.pop().ok_or(format!("unbalanced {c:?} in {expr}"))?;
                let want = match open {
                    '(' => ')',
                    '{' => '}',
                    _ => ']',
                };
                if c != want {
                    return Err(format!("mismatched {open:?}/{c:?} in {expr}"));
                }
                if c == ')' {
                    out.push(c);
                }
            }
            _ if stack.last().is_some_and(|o| *o != '(') => {}
            _ => out.push(c),
        }
    }
    if in_string.is_some() || !stack.is_empty() {
        return Err(format!("unclosed string or bracket in {expr}"));
    }
    // Tokens: identifiers, numbers/durations, punctuation.
    let mut tokens: Vec<String> = Vec::new();
    let mut chars = out.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let mut id = String::new();
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            {
                id.push(chars.next().unwrap());
            }
            tokens.push(id);
        } else if c.is_ascii_digit() || c == '.' {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '.')
            {
                chars.next();
            }
            tokens.push("0".into());
        } else {
            chars.next();
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
        }
    }
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let next = tokens.get(i + 1).map(String::as_str);
        if GROUPING.contains(&t.as_str()) && next == Some("(") {
            // Skip the label list.
            while i < tokens.len() && tokens[i] != ")" {
                i += 1;
            }
        } else if t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && !KEYWORDS.contains(&t.as_str())
            && next != Some("(")
            && !next.is_some_and(|n| GROUPING.contains(&n))
        {
            names.insert(t.clone());
        }
        i += 1;
    }
    if names.is_empty() {
        return Err(format!("no metric in {expr}"));
    }
    Ok(names)
}

fn alert_exprs(yaml: &str) -> Vec<String> {
    let exprs: Vec<String> = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_string())
        .collect();
    let alerts = yaml
        .lines()
        .filter(|l| l.trim().starts_with("- alert:"))
        .count();
    assert_eq!(exprs.len(), alerts, "one single-line expr per alert");
    exprs
}

fn dashboard_exprs(json: &serde_json::Value, out: &mut Vec<String>) {
    match json {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    ("query", serde_json::Value::String(q)) if q.starts_with("label_values(") => {
                        let metric = q
                            .trim_start_matches("label_values(")
                            .split(',')
                            .next()
                            .unwrap_or_default();
                        out.push(metric.trim().to_string());
                    }
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn the_checker_catches_unknown_metrics_and_broken_expressions() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (service_name, le) (rate(traces_duration_seconds_bucket{status="a{b"}[$__rate_interval] offset 5m)))"#,
    )
    .unwrap();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["traces_duration_seconds_bucket"]
    );
    assert!(metric_names("sum(rate(traces_total[5m])").is_err());
    assert!(metric_names("sum(rate(traces_total{a=\"b}[5m]))").is_err());
    assert!(metric_names("sum by (x) (rate([5m]))").is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_and_dashboard_name_only_exported_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[exporters]]\nname = \"up\"\nprotocol = \"http\"\nendpoint = \"http://127.0.0.1:{}/v1/traces\"\n",
            free_port()
        ),
    )
    .unwrap();
    let c = Collector::start(&dir.path().join("d"), &["--config", cfg.to_str().unwrap()]);
    // Families appear once they have a sample: send a failing client/server pair.
    let t = trace_id(31, 1);
    let mut client_span = SpanSpec::new(t.clone(), span_id(1), "GET");
    client_span.kind = 3;
    let mut server = SpanSpec::new(t.clone(), span_id(2), "GET /x");
    server.parent = span_id(1);
    server.error = true;
    send_spans(&c, "a", vec![client_span.span()]).await;
    send_spans(&c, "b", vec![server.span()]).await;
    let mut exported = BTreeSet::new();
    for _ in 0..600 {
        let (_, m) = get_text(&c, "/metrics").await;
        exported = m
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_string)
            .collect();
        // The service graph's families come from the analytics thread, off the acknowledgement's path:
        // they can appear after the exporter's.
        if exported.contains("meshtrace_collector_exporter_queue_spans")
            && exported.contains("traces_service_graph_request_failed_total")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    let yaml = std::fs::read_to_string(format!("{root}/prometheus/meshtrace-alerts.yml")).unwrap();
    let mut exprs = alert_exprs(&yaml);
    assert!(exprs.len() >= 4, "latency, errors, silence, dependency");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/grafana/meshtrace-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut panel_exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut panel_exprs);
    assert!(panel_exprs.len() >= 8);
    exprs.extend(panel_exprs);
    // The Grafana data sources' traces-to-metrics queries (`$$__tags` is Grafana's, escaped for
    // provisioning).
    exprs.extend(
        provisioned_datasources()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("query:"))
            .map(|q| {
                q.trim()
                    .replace("{$$__tags, ", "{")
                    .replace("{$$__tags}", "")
            }),
    );
    for expr in &exprs {
        let names = metric_names(expr).unwrap_or_else(|e| panic!("{e}"));
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} (in {expr}) is not exported; exported: {exported:?}"
            );
        }
    }
}

fn provisioned_datasources() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/provisioning/datasources/meshtrace.yaml"
    ))
    .unwrap()
}

/// The value after `key:` on the first line (at or after `from`) that has it.
fn yaml_value<'a>(yaml: &'a str, from: &str, key: &str) -> Option<&'a str> {
    let start = yaml.find(from)?;
    yaml.get(start..)?
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .map(str::trim)
}

#[test]
fn grafana_is_provisioned_with_tempo_jaeger_and_prometheus() {
    let yaml = provisioned_datasources();
    assert_eq!(
        yaml_value(&yaml, "type: tempo", "url"),
        Some("http://127.0.0.1:3200"),
        "Tempo on --tempo-addr"
    );
    assert_eq!(
        yaml_value(&yaml, "type: jaeger", "url"),
        Some("http://127.0.0.1:16686"),
        "Jaeger on --http-addr"
    );
    assert_eq!(
        yaml_value(&yaml, "uid: meshtrace-prometheus", "type"),
        Some("prometheus")
    );
    assert_eq!(
        yaml_value(&yaml, "serviceMap:", "datasourceUid"),
        Some("meshtrace-prometheus"),
        "the service map reads the service-graph metrics from Prometheus"
    );
    assert_eq!(
        yaml_value(&yaml, "tracesToMetrics:", "datasourceUid"),
        Some("meshtrace-prometheus")
    );
    assert_eq!(
        yaml_value(&yaml, "streamingEnabled:", "search"),
        Some("false"),
        "no gRPC streaming here"
    );
    assert!(!yaml.contains('\t'), "YAML is indented with spaces");
    let dashboards = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/provisioning/dashboards/meshtrace.yaml"
    ))
    .unwrap();
    assert_eq!(yaml_value(&dashboards, "providers:", "type"), Some("file"));
}

#[test]
fn the_service_map_panel_gets_the_fields_grafanas_node_graph_requires() {
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/meshtrace-dashboard.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let panel = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "nodeGraph")
        .expect("a node graph panel");
    // Grafana's node graph reads an edges frame: `id`, `source` and `target` (and `mainstat`,
    // `secondarystat`); nodes are derived from the edges. With a Prometheus table the labels become the
    // fields, so each query must carry them as labels, one frame per query merged into one.
    let targets = panel["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    for t in targets {
        let expr = t["expr"].as_str().unwrap();
        assert_eq!(t["format"], "table", "{expr}");
        assert_eq!(t["instant"], true, "{expr}");
        for needle in [
            r#""source", "$1", "client", "(.*)""#,
            r#""target", "$1", "server", "(.*)""#,
            r#""id", "->", "client", "server""#,
        ] {
            assert!(expr.contains(needle), "{needle} in {expr}");
        }
    }
    let transformations = panel["transformations"].as_array().unwrap();
    assert_eq!(
        transformations[0]["id"], "merge",
        "the two queries become one frame"
    );
    assert_eq!(transformations[1]["id"], "organize");
    let rename = &transformations[1]["options"]["renameByName"];
    assert_eq!(rename["Value #A"], "mainstat");
    assert_eq!(rename["Value #B"], "secondarystat");
    let excluded = &transformations[1]["options"]["excludeByName"];
    for field in ["Time", "client", "server"] {
        assert_eq!(excluded[field], true, "{field} is dropped");
    }
}
