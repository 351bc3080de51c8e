//! The root context: one per plugin and VM (so one per Envoy worker). It
//! owns the configuration, the exporter and, when configured, the remote
//! sampling poller; its tick drives both.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use meshtrace_core::decimal::Decimal;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::http::RequestContext;
use super::wasm_host::{callout_response_header, WasmHost};
use crate::config::Config;
use crate::exporter::{Exporter, Outcome};
use crate::sampler::remote::Poller;
use crate::tracer::Tracer;
use crate::{otlp, resource};

/// What the root context shares with its HTTP contexts.
pub struct Shared {
    pub tracer: Tracer,
    pub exporter: RefCell<Exporter>,
    pub poller: Option<RefCell<Poller>>,
    pub host: WasmHost,
}

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
}

impl Root {
    fn configure(&mut self) -> Result<(), String> {
        let bytes = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .map_err(|s| format!("cannot read the plugin configuration: {s:?}"))?
            .unwrap_or_default();
        let mut config = Config::parse(&bytes).map_err(|e| e.to_string())?;
        let env = |k: &str| std::env::var(k).ok();
        config
            .exporter
            .resolve_bearer_token(&env)
            .map_err(|e| e.to_string())?;
        let tracer = Tracer::new(&config, &env).map_err(|e| e.to_string())?;
        let host = WasmHost::new();
        let attributes = resource::attributes(config.service_name.as_deref(), &env, &host);
        let service = attributes
            .first()
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let exporter = Exporter::new(config.exporter.clone(), otlp::framing(&attributes));
        if let Err(s) = hostcalls::set_tick_period(Duration::from_millis(exporter.tick_ms())) {
            return Err(format!("cannot set the tick period: {s:?}"));
        }
        let poller = config
            .sampling
            .remote
            .clone()
            .map(|r| RefCell::new(Poller::new(r, &service)));
        log::info!(
            "meshtrace: service `{service}`, propagators {:?}, sampling {}% with {} rules{}, x-request-id links {}, exporting to cluster `{}`",
            config.propagators,
            Decimal(config.sampling.random_sampling_percentage),
            config.sampling.rules.len(),
            if poller.is_some() { " and remote strategies" } else { "" },
            if config.link_by_request_id { "on" } else { "off" },
            config.exporter.cluster(),
        );
        self.shared = Some(Rc::new(Shared {
            tracer,
            exporter: RefCell::new(exporter),
            poller,
            host,
        }));
        Ok(())
    }
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(shared) = &self.shared else {
            return;
        };
        let status = callout_response_header(":status").and_then(|s| s.parse::<u16>().ok());
        if let Some(poller) = shared.poller.as_ref().filter(|p| p.borrow().owns(token_id)) {
            let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default();
            if let Some(strategies) = poller.borrow_mut().on_response(status, &body, &shared.host) {
                shared.tracer.sampler.set_remote(strategies);
            }
            return;
        }
        let retry_after = callout_response_header("retry-after");
        let outcome = match status {
            Some(code) => Outcome::Status(code, retry_after.as_deref()),
            None => Outcome::NoAnswer,
        };
        shared
            .exporter
            .borrow_mut()
            .on_response(token_id, outcome, &shared.host);
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        match self.configure() {
            Ok(()) => true,
            Err(reason) => {
                log::error!("meshtrace: invalid configuration: {reason}");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Some(shared) = &self.shared {
            shared.host.tick_clock();
            shared.tracer.on_tick(&shared.host);
            shared.exporter.borrow_mut().on_tick(&shared.host);
            if let Some(poller) = &shared.poller {
                poller.borrow_mut().on_tick(&shared.host);
            }
            shared.host.flush_counters();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(RequestContext::new(self.shared.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
