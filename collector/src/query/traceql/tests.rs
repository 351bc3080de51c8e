//! Table tests for the TraceQL subset: what parses (and what is refused, where, and why), what matches on
//! a known trace, and what the plan asks of the store. One reason per row.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, Status};

use super::*;
use crate::model::{string_attribute, SpanRecord};
use crate::query::aliases;

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn int(key: &str, i: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(i))
}

#[allow(clippy::too_many_arguments)]
fn span(
    id: u8,
    parent: u8,
    service: &str,
    name: &str,
    kind: i32,
    start_ms: u64,
    end_ms: u64,
    attrs: Vec<KeyValue>,
    error: bool,
) -> SpanRecord {
    SpanRecord::new(
        Resource {
            attributes: vec![
                string_attribute("service.name", service),
                string_attribute("k8s.namespace.name", "shop"),
            ],
            ..Default::default()
        },
        Default::default(),
        Span {
            trace_id: vec![9; 16],
            span_id: vec![id; 8],
            parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
            name: name.into(),
            kind,
            start_time_unix_nano: start_ms * 1_000_000,
            end_time_unix_nano: end_ms * 1_000_000,
            attributes: attrs,
            status: error.then(|| Status {
                code: 2,
                message: "boom".into(),
            }),
            ..Default::default()
        },
    )
    .unwrap()
}

/// api-gateway GET /checkout -> order-service POST /orders (failing, legacy status tag) -> payment-service.
fn trace() -> Vec<SpanRecord> {
    vec![
        span(
            1,
            0,
            "api-gateway",
            "GET /checkout",
            2,
            0,
            120,
            vec![
                string_attribute("http.request.method", "GET"),
                int("http.response.status_code", 200),
                string_attribute("user.id", "u-42"),
            ],
            false,
        ),
        span(
            2,
            1,
            "api-gateway",
            "POST /orders",
            3,
            5,
            110,
            vec![string_attribute("server.address", "order-service")],
            false,
        ),
        span(
            3,
            2,
            "order-service",
            "POST /orders",
            2,
            10,
            105,
            vec![string_attribute("http.status_code", "500")],
            true,
        ),
        span(4, 3, "order-service", "POST /pay", 3, 20, 90, vec![], false),
        span(
            5,
            4,
            "payment-service",
            "POST /pay",
            2,
            25,
            85,
            vec![
                int("retries", 3),
                kv("cached", any_value::Value::BoolValue(true)),
                kv(
                    "tags",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(any_value::Value::StringValue("a".into())),
                            },
                            AnyValue {
                                value: Some(any_value::Value::StringValue("b".into())),
                            },
                        ],
                    }),
                ),
            ],
            false,
        ),
        span(
            6,
            3,
            "order-service",
            "validate",
            1,
            12,
            14,
            vec![kv("weight", any_value::Value::DoubleValue(1.5))],
            false,
        ),
    ]
}

/// The names of the spans the query ends with (all spansets), or `None` when the trace does not match.
fn run(q: &str) -> Option<Vec<String>> {
    let query = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    let records = trace();
    let view = TraceView::new(&records);
    let sets = view.run(&query);
    if sets.is_empty() {
        return None;
    }
    let mut names: Vec<String> = sets
        .iter()
        .flat_map(|s| {
            s.spans.iter().map(|i| {
                format!(
                    "{}:{}",
                    view.spans[*i].service_name(),
                    view.spans[*i].span.name
                )
            })
        })
        .collect();
    names.sort();
    names.dedup();
    Some(names)
}

#[test]
fn evaluation_follows_tempo_semantics() {
    let gw = "api-gateway:GET /checkout";
    let gw_client = "api-gateway:POST /orders";
    let orders = "order-service:POST /orders";
    let pay_client = "order-service:POST /pay";
    let pay = "payment-service:POST /pay";
    let validate = "order-service:validate";
    let cases: Vec<(&str, Option<Vec<&str>>, &str)> = vec![
        ("{ }", Some(vec![gw, gw_client, orders, pay_client, pay, validate]), "{} selects every span"),
        ("{ name = \"GET /checkout\" }", Some(vec![gw]), "intrinsic name"),
        ("{ span:name = \"validate\" }", Some(vec![validate]), "scoped intrinsic name"),
        ("{ status = error }", Some(vec![orders]), "status keyword"),
        ("{ span:status != error && kind = server }", Some(vec![gw, pay]), "status and kind keywords"),
        ("{ statusMessage = \"boom\" }", Some(vec![orders]), "status message"),
        ("{ kind = client }", Some(vec![gw_client, pay_client]), "kind keyword"),
        ("{ duration > 100ms }", Some(vec![gw, gw_client]), "duration literal, strictly greater"),
        ("{ duration >= 95ms && duration <= 105ms }", Some(vec![gw_client, orders]), "duration range, both ends included"),
        ("{ traceDuration > 100ms && rootName = \"GET /checkout\" && rootServiceName = \"api-gateway\" } | count() = 6", Some(vec![gw, gw_client, orders, pay_client, pay, validate]), "trace-level intrinsics hold on every span"),
        ("{ trace:duration > 1s }", None, "trace:duration is 120 ms"),
        ("{ resource.service.name = \"payment-service\" }", Some(vec![pay]), "resource attribute"),
        ("{ .service.name = \"payment-service\" }", Some(vec![pay]), "unscoped falls back to the resource"),
        ("{ span.service.name = \"payment-service\" }", None, "span scope does not read the resource"),
        ("{ .user.id = \"u-42\" }", Some(vec![gw]), "unscoped span attribute"),
        ("{ span.http.status_code = 500 }", Some(vec![orders]), "legacy name, string tag read as a number (Zipkin leniency)"),
        ("{ span.http.response.status_code = 500 }", Some(vec![orders]), "stable name finds the legacy attribute"),
        ("{ span.http.status_code = 200 }", Some(vec![gw]), "legacy name finds the stable int attribute"),
        ("{ span.http.response.status_code = \"200\" }", None, "typed: an int attribute is not the string \"200\""),
        ("{ span.http.status_code >= 400 }", Some(vec![orders]), "ordering on numbers"),
        ("{ span.http.method = \"GET\" }", Some(vec![gw]), "legacy method name"),
        ("{ span.retries > 2 && span.cached = true }", Some(vec![pay]), "int and bool attributes"),
        ("{ span.cached }", Some(vec![pay]), "a boolean attribute alone"),
        ("{ span.weight > 1.2 }", Some(vec![validate]), "float attribute"),
        ("{ span.tags = \"b\" }", Some(vec![pay]), "array: any element"),
        ("{ span.tags != \"b\" }", None, "array: none may be equal"),
        ("{ span.user.id = nil && resource.service.name = \"api-gateway\" }", Some(vec![gw_client]), "nil: missing attribute"),
        ("{ span.user.id != nil }", Some(vec![gw]), "!= nil: present"),
        ("{ name =~ \"POST.*\" && !(name = \"POST /pay\") }", Some(vec![gw_client, orders]), "regex and negation"),
        ("{ name =~ \"POST\" }", None, "regexes are fully anchored"),
        ("{ name !~ \"POST.*|GET.*\" }", Some(vec![validate]), "negated regex"),
        ("{ kind = internal || name = \"GET /checkout\" && kind = server }", Some(vec![gw]), "&& and || bind equally, left to right (as in Tempo)"),
        ("{ nil = span.user.id && kind = client }", Some(vec![gw_client, pay_client]), "nil on the left"),
        ("{ resource.service.name = \"order-service\" } >> { resource.service.name = \"payment-service\" }", Some(vec![pay]), "descendant: the question of issue 13"),
        ("{ resource.service.name = \"payment-service\" } >> { resource.service.name = \"order-service\" }", None, "descendant is directional"),
        ("{ kind = client } > { kind = server }", Some(vec![orders, pay]), "child"),
        ("{ name = \"validate\" } < { }", Some(vec![orders]), "parent"),
        ("{ resource.service.name = \"payment-service\" } << { kind = server }", Some(vec![gw, orders]), "ancestor"),
        ("{ name = \"validate\" } ~ { }", Some(vec![pay_client]), "sibling (same parent, not itself)"),
        ("{ status = error } && { span.retries = 3 }", Some(vec![orders, pay]), "&& keeps both sides' spans"),
        ("{ status = error } && { name = \"nothing\" }", None, "&& needs both sides"),
        ("{ name = \"nothing\" } || { name = \"validate\" }", Some(vec![validate]), "|| needs either"),
        ("({ kind = client } > { kind = server }) && { status = error }", Some(vec![orders, pay]), "parentheses"),
        ("{ kind = server } | count() > 2", Some(vec![gw, orders, pay]), "count over the spanset"),
        ("{ kind = server } | count() > 3", None, "too few"),
        ("count() = 6", Some(vec![gw, gw_client, orders, pay_client, pay, validate]), "a bare pipeline stage means { } | ..."),
        ("{ kind = server } | avg(duration) > 90ms", Some(vec![gw, orders, pay]), "avg of durations: (120+95+60)/3 ms"),
        ("{ kind = server } | max(duration) <= 120ms && false", None, "an aggregate stage ends at its value; the rest is refused below"),
        ("{ } | min(span.retries) = 3", Some(vec![gw, gw_client, orders, pay_client, pay, validate]), "min over an attribute ignores spans without it"),
        ("{ } | sum(span.weight) > 1", Some(vec![gw, gw_client, orders, pay_client, pay, validate]), "sum of floats"),
        ("{ } | by(resource.service.name) | count() > 2", Some(vec![orders, pay_client, validate]), "by groups, then each group is counted"),
        ("{ kind = server } | by(resource.service.name) | count() = 1", Some(vec![gw, orders, pay]), "three groups of one"),
        ("{ } | select(span.user.id) | { kind = client }", Some(vec![gw_client, pay_client]), "a later spanset filters the spans"),
        ("{ status = error } | by(kind) | coalesce()", Some(vec![orders]), "coalesce merges"),
    ];
    for (q, want, why) in cases {
        if q.contains("&& false") {
            assert!(parse(q).is_err(), "{why}: {q}");
            continue;
        }
        let want = want.map(|w| {
            let mut w: Vec<String> = w.iter().map(|s| s.to_string()).collect();
            w.sort();
            w
        });
        assert_eq!(run(q), want, "{why}: {q}");
    }
}

#[test]
fn by_records_the_group_value() {
    let records = trace();
    let view = TraceView::new(&records);
    let sets = view.run(&parse("{ kind = server } | by(resource.service.name)").unwrap());
    let attrs: Vec<(String, ast::Value)> = sets.iter().flat_map(|s| s.attributes.clone()).collect();
    assert_eq!(attrs.len(), 3);
    assert_eq!(
        attrs[0],
        (
            "by(resource.service.name)".into(),
            ast::Value::Str("api-gateway".into())
        )
    );
}

#[test]
fn queries_outside_the_subset_are_refused_with_position_and_expectation() {
    // (query, column of the error, a phrase the message must hold, reason)
    let cases: &[(&str, usize, &str, &str)] = &[
        ("", 1, "a query such as `{ }`", "empty"),
        ("{ name = \"x\" ", 14, "`}`", "unclosed spanset"),
        ("{ name = }", 10, "a field", "comparison without a value"),
        (
            "{ name = \"x\" } |",
            17,
            "a spanset",
            "pipe with nothing after it",
        ),
        (
            "{ span.a = 1 + 2 }",
            14,
            "arithmetic is not supported",
            "arithmetic",
        ),
        (
            "{ foo = 1 }",
            3,
            "`foo` is not an intrinsic",
            "unknown intrinsic",
        ),
        ("{ event.name = \"x\" }", 3, "`event.`", "unsupported scope"),
        (
            "{ a } &>> { b }",
            3,
            "not an intrinsic",
            "bare word inside a spanset",
        ),
        (
            "{ } &>> { }",
            5,
            "union and negated structural operators are not supported",
            "union structural operator",
        ),
        (
            "{ } !< { }",
            5,
            "not supported",
            "negated structural operator",
        ),
        ("{ } | rate()", 7, "metrics functions", "TraceQL metrics"),
        (
            "{ name =~ \"(\" }",
            8,
            "a valid regular expression",
            "broken regex",
        ),
        (
            "{ name =~ 5 }",
            8,
            "a string literal",
            "regex needs a string",
        ),
        (
            "{ } | count(duration) > 1",
            13,
            "`count()` takes no argument",
            "count with an argument",
        ),
        ("{ } | avg() > 1", 11, "a field", "avg without a field"),
        (
            "{ } | count() =~ \"x\"",
            15,
            "a comparison",
            "regex on an aggregate",
        ),
        ("{ } with (most_recent=true)", 5, "hints", "query hints"),
        (
            "{ trace:rootName = \"x\" } | by(span:unknown)",
            31,
            "`span:unknown` is not supported",
            "unknown scoped intrinsic",
        ),
        (
            "{ }\n| select(",
            10,
            "a field to select",
            "line and column on the second line",
        ),
        (
            "({ } | count() > 1) >> { }",
            6,
            "pipelines inside parentheses",
            "wrapped pipelines",
        ),
    ];
    for (q, column, phrase, why) in cases {
        let err = parse(q)
            .err()
            .unwrap_or_else(|| panic!("{why}: accepted {q:?}"));
        let msg = err.to_string();
        assert!(msg.contains(phrase), "{why}: {msg}");
        assert_eq!(err.column, *column, "{why}: {msg}");
        assert!(
            msg.starts_with(&format!(
                "parse error at line {}, col {}",
                err.line, err.column
            )),
            "{msg}"
        );
    }
    let err = parse("{ }\n| select(").err().unwrap();
    assert_eq!((err.line, err.column), (2, 10), "second line");
}

/// Found by the `traceql` fuzz target: 100,000 `(` overflowed the stack (the parser, the evaluator and the
/// tree's drop recurse) and killed the process. Deep and long queries are refused with a parse error;
/// queries at the bounds still run.
#[test]
fn deep_or_long_queries_are_refused_not_a_stack_overflow() {
    for (q, want) in [
        (
            format!("{}{{}}{}", "(".repeat(100_000), ")".repeat(100_000)),
            "nested parentheses",
        ),
        (
            format!("{{ {}name = \"a\" }}", "!".repeat(100_000)),
            "nested parentheses or `!`",
        ),
        (
            format!(
                "{{ {}name = \"a\"{} }}",
                "(".repeat(100_000),
                ")".repeat(100_000)
            ),
            "nested",
        ),
        (vec!["{ }"; 100_000].join(" && "), "structural operators"),
        (vec!["{ }"; 100_000].join(" > "), "structural operators"),
        (
            format!("{{ {} }}", vec!["name = \"a\""; 100_000].join(" || ")),
            "operators",
        ),
    ] {
        let err = parse(&q)
            .err()
            .unwrap_or_else(|| panic!("{} accepted", &q[..40]));
        assert!(err.to_string().contains(want), "{err}");
    }
    let deep = format!("{}{{ name = \"a\" }}{}", "(".repeat(64), ")".repeat(64));
    assert!(parse(&deep).is_ok(), "64 levels are fine");
    let long = vec!["{ }"; 257].join(" && ");
    assert!(run(&long).is_some(), "256 operators are fine");
}

#[test]
fn the_plan_asks_the_store_for_what_one_span_must_have() {
    // (query, service, operation, tags, min µs, max µs, reason)
    type Row = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Vec<(&'static str, &'static str)>,
        Option<u64>,
        Option<u64>,
        &'static str,
    );
    let cases: Vec<Row> = vec![
        ("{ }", None, None, vec![], None, None, "no condition"),
        ("{ resource.service.name = \"a\" && name = \"GET /\" }", Some("a"), Some("GET /"), vec![], None, None, "service and operation"),
        ("{ status = error && span.http.status_code = 500 }", None, None, vec![("error", "true"), ("http.status_code", "500")], None, None, "status and an aliased tag"),
        ("{ kind = server && duration > 5s }", None, None, vec![("span.kind", "server")], Some(5_000_000), None, "kind and a minimum duration"),
        ("{ duration < 1ms }", None, None, vec![], None, Some(1_001), "a maximum duration, rounded up"),
        ("{ .user.id = \"u\" || name = \"x\" }", None, None, vec![], None, None, "|| inside a filter requires nothing"),
        ("{ span.x =~ \"a.*\" && span.y != \"b\" && span.z > 3 }", None, None, vec![], None, None, "only equality is indexed"),
        ("{ resource.service.name = \"order-service\" } >> { resource.service.name = \"payment-service\" }", Some("payment-service"), None, vec![], None, None, "structural: the right side when both weigh the same"),
        ("{ resource.service.name = \"a\" && name = \"x\" } > { kind = server }", Some("a"), Some("x"), vec![], None, None, "structural: the heavier side"),
        ("{ name = \"a\" } || { name = \"b\" }", None, None, vec![], None, None, "|| between spansets requires nothing"),
        ("{ span.retries = 3.5 }", None, None, vec![], None, None, "floats are not indexed"),
    ];
    for (q, service, operation, tags, min, max, why) in cases {
        let p = plan::candidates(&parse(q).unwrap());
        assert_eq!(p.service.as_deref(), service, "{why}");
        assert_eq!(p.operation.as_deref(), operation, "{why}");
        let want: Vec<_> = tags.iter().map(|(k, v)| aliases::tag(k, v)).collect();
        assert_eq!(p.tags, want, "{why}");
        assert_eq!((p.min_duration_us, p.max_duration_us), (min, max), "{why}");
    }
}
