//! Properties over generated input: no header panics a parser, and what
//! inject writes, extract reads back, in every format.

use proptest::prelude::*;

use super::tests::{apply, view};
use super::*;
use crate::host::mock::MockHost;
use crate::tracer::Tracer;

fn any_context() -> impl Strategy<Value = SpanContext> {
    (
        any::<u128>().prop_filter("valid", |v| *v != 0),
        any::<u64>().prop_filter("valid", |v| *v != 0),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(("[a-z][a-z0-9_*/-]{0,10}", "[!-+.-<>-~]{1,20}"), 0..5),
    )
        .prop_map(|(t, s, sampled, debug, random, ts)| {
            let joined: Vec<String> = ts.iter().map(|(k, v)| format!("{k}={v}")).collect();
            SpanContext {
                trace_id: TraceId::from_u128(t),
                span_id: SpanId::from_u64(s),
                sampled: sampled || debug,
                debug,
                random,
                tracestate: TraceState::parse(&joined.join(",")).unwrap_or_default(),
            }
        })
}

fn any_baggage() -> impl Strategy<Value = Baggage> {
    proptest::collection::vec(("[a-z][a-z0-9_.-]{0,12}", "\\PC{0,24}"), 0..8).prop_map(|pairs| {
        let mut b = Baggage::default();
        for (key, value) in pairs {
            b.push(baggage::Member {
                key,
                value,
                properties: None,
            });
        }
        b
    })
}

/// Header names the parsers read, plus noise.
fn any_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let names = prop_oneof![
        Just("traceparent".to_string()),
        Just("tracestate".to_string()),
        Just("baggage".to_string()),
        Just("b3".to_string()),
        Just("x-b3-traceid".to_string()),
        Just("x-b3-spanid".to_string()),
        Just("x-b3-sampled".to_string()),
        Just("x-b3-flags".to_string()),
        Just("x-b3-parentspanid".to_string()),
        Just("uber-trace-id".to_string()),
        "uberctx-[a-z ]{0,6}",
        "[a-z-]{1,8}",
    ];
    let values = prop_oneof![
        "\\PC{0,80}",
        "[0-9a-f-]{0,60}",
        "00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}",
        "[0-9a-f]{1,32}(:|%3A)[0-9a-f]{1,16}(:|%3A)[0-9a-f]{1,16}(:|%3A)[0-9a-f]{1,3}",
        "([a-z0-9=%;, ]{0,10}){0,20}",
    ];
    let values = prop_oneof![
        4 => values.prop_map(String::into_bytes),
        // obs-text and bytes that are not UTF-8: legal on the wire.
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ];
    proptest::collection::vec((names, values), 0..12)
}

const FORMATS: [Format; 4] = [
    Format::TraceContext,
    Format::B3,
    Format::B3Multi,
    Format::Jaeger,
];

proptest! {
    #[test]
    fn extract_after_inject_returns_the_same_context(ctx in any_context(), bag in any_baggage()) {
        for format in FORMATS {
            let p = Propagators::new(&[format, Format::Baggage]);
            let mut headers = Vec::new();
            apply(&mut headers, &p.inject(&ctx, &bag, &[]));
            let got = p.extract(&view(&headers));
            let (winner, inc) = got.winner.clone().unwrap_or_else(|| panic!("{format}: nothing extracted from {headers:?}"));
            prop_assert_eq!(winner, format);
            prop_assert_eq!(inc.parent, Some((ctx.trace_id, ctx.span_id)), "{}", format);
            let want = match (ctx.debug, ctx.sampled) {
                (true, _) if format != Format::TraceContext => Sampling::Debug,
                (_, true) => Sampling::Accept,
                _ => Sampling::Deny,
            };
            prop_assert_eq!(inc.sampling, want, "{}", format);
            if format == Format::TraceContext {
                prop_assert_eq!(inc.random, ctx.random);
                prop_assert_eq!(&inc.tracestate, &ctx.tracestate);
            }
            prop_assert_eq!(&got.baggage, &bag, "{}: baggage", format);
            prop_assert_eq!(got.malformed, 0);
        }
    }

    #[test]
    fn jaeger_baggage_round_trips(bag in any_baggage()) {
        let p = Propagators::new(&[Format::Jaeger]);
        let mut headers = Vec::new();
        let ctx = SpanContext {
            trace_id: TraceId::from_u128(1), span_id: SpanId::from_u64(1),
            sampled: true, debug: false, random: false, tracestate: TraceState::default(),
        };
        apply(&mut headers, &p.inject(&ctx, &bag, &[]));
        prop_assert_eq!(&p.extract(&view(&headers)).baggage, &bag);
    }

    #[test]
    fn no_headers_panic_the_propagators(headers in any_headers()) {
        let p = Propagators::new(&Format::ALL);
        let got = p.extract(&view(&headers));
        let ctx = SpanContext {
            trace_id: TraceId::from_u128(7), span_id: SpanId::from_u64(7),
            sampled: true, debug: false, random: true,
            tracestate: got.winner.as_ref().map(|(_, i)| i.tracestate.clone()).unwrap_or_default(),
        };
        let mut out = headers.clone();
        apply(&mut out, &p.inject(&ctx, &got.baggage, &view(&headers)));
        // After inject every trace format agrees on the context.
        for format in FORMATS {
            let single = Propagators::new(&[format]).extract(&view(&out));
            let parent = single.winner.and_then(|(_, i)| i.parent);
            prop_assert_eq!(parent, Some((ctx.trace_id, ctx.span_id)), "{} disagrees", format);
        }
        if let Some(v) = out.iter().find(|(k, _)| k == "tracestate").map(|(_, v)| v) {
            prop_assert!(!v.is_empty() && v.len() <= tracestate::MAX_LEN);
        }
        if let Some(v) = out.iter().find(|(k, _)| k == "baggage").map(|(_, v)| v) {
            prop_assert!(v.len() <= baggage::MAX_BYTES);
        }
    }

    #[test]
    fn no_request_panics_the_tracer(headers in any_headers(), pct in 0.0f64..=100.0) {
        let t = Tracer::new(&crate::config::Config {
            propagators: Format::ALL.iter().map(|f| f.name().to_string()).collect(),
            sampling: crate::config::SamplingConfig { random_sampling_percentage: pct, ..Default::default() },
            ..Default::default()
        }, &|_| None).unwrap();
        let host = MockHost::with_headers(&[]);
        *host.headers.borrow_mut() = headers;
        host.set_int("response.code", 200);
        let span = t.start(&host);
        let sampled = span.sampled();
        prop_assert_eq!(t.finish(span, &host).is_some(), sampled);
    }
}
