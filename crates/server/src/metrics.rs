//! Prometheus metrics: HTTP requests and latency counted as they happen; runs, LLM calls, tokens, cost
//! and cache entries read from the store at scrape time (so they cover every process writing to it); the
//! store write queue depth of this process.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rvbbit_store::{CostGroup, EventFilter, Store, WriterHandle};

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) method: String,
    /// The route template (`/api/v1/sessions/{id}`), never the raw path, to bound cardinality.
    pub(crate) route: String,
    pub(crate) status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: String,
}

/// The server's metrics registry.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    sessions: Family<StatusLabels, Gauge>,
    llm_calls: Gauge,
    tokens: Family<DirectionLabels, Gauge>,
    cost: Gauge<f64, AtomicU64>,
    unknown_cost: Gauge,
    cache_entries: Gauge,
    cache_hits: Gauge,
    queue: Gauge,
    spilled: Gauge,
    lost: Gauge,
    sink_written: Gauge,
    sink_pending: Gauge,
    sink_last_write: Gauge,
    ping: Gauge<f64, AtomicU64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("rvbbit");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (streams: until the response starts)",
            latency.clone(),
        );
        let sessions = Family::<StatusLabels, Gauge>::default();
        registry.register("sessions", "Sessions in the store by status", sessions.clone());
        let llm_calls = Gauge::default();
        registry.register(
            "store_llm_calls",
            "Priced calls (LLM calls) recorded in the store",
            llm_calls.clone(),
        );
        let tokens = Family::<DirectionLabels, Gauge>::default();
        registry.register("store_tokens", "Tokens recorded in the store", tokens.clone());
        let cost = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "store_cost_usd",
            "Known cost recorded in the store, in dollars",
            cost.clone(),
        );
        let unknown_cost = Gauge::default();
        registry.register(
            "store_unknown_cost_calls",
            "Calls whose cost is unknown (never counted as zero)",
            unknown_cost.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "store_cache_entries",
            "Entries in the result cache",
            cache_entries.clone(),
        );
        let cache_hits = Gauge::default();
        registry.register(
            "store_cache_hits",
            "Hits served by the result cache (calls avoided)",
            cache_hits.clone(),
        );
        let queue = Gauge::default();
        registry.register(
            "store_write_queue_depth",
            "Records waiting for this process's store writer",
            queue.clone(),
        );
        let spilled = Gauge::default();
        registry.register(
            "store_records_spilled",
            "Records this process spilled to files because the store failed (replay with `rvbbit db replay`)",
            spilled.clone(),
        );
        let lost = Gauge::default();
        registry.register(
            "store_records_lost",
            "Records this process could neither store nor spill (RVB-S008); alert on any increase",
            lost.clone(),
        );
        let sink_written = Gauge::default();
        registry.register(
            "events_sink_events_written",
            "Events this process sent to the events sink (`[store.events] url`; 0 without one)",
            sink_written.clone(),
        );
        let sink_pending = Gauge::default();
        registry.register(
            "events_sink_events_pending",
            "Events this process spilled for the events sink and not replayed yet (its lag)",
            sink_pending.clone(),
        );
        let sink_last_write = Gauge::default();
        registry.register(
            "events_sink_last_write_timestamp_seconds",
            "When this process last wrote a batch to the events sink (Unix seconds; 0: never)",
            sink_last_write.clone(),
        );
        let ping = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "store_ping_seconds",
            "Round trip of one store ping, measured when /metrics is scraped",
            ping.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            sessions,
            llm_calls,
            tokens,
            cost,
            unknown_cost,
            cache_entries,
            cache_hits,
            queue,
            spilled,
            lost,
            sink_written,
            sink_pending,
            sink_last_write,
            ping,
        }
    }

    /// Count one answered request.
    pub(crate) fn observe(&self, labels: RequestLabels, seconds: f64) {
        self.latency
            .get_or_create(&RouteLabels {
                route: labels.route.clone(),
            })
            .observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }

    /// Refresh the store-derived gauges and render everything in the Prometheus text format.
    pub(crate) async fn render(
        &self,
        store: &dyn Store,
        writer: Option<&WriterHandle>,
    ) -> Result<String, rvbbit_store::Error> {
        let started = std::time::Instant::now();
        store.ping().await?;
        self.ping.set(started.elapsed().as_secs_f64());
        for (status, n) in store.session_counts().await? {
            self.sessions
                .get_or_create(&StatusLabels {
                    status: status.as_str().to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let totals = store.costs(CostGroup::Total, &EventFilter::default()).await?;
        let total = totals.first().cloned().unwrap_or_default();
        self.llm_calls.set(i64::try_from(total.calls).unwrap_or(i64::MAX));
        for (direction, n) in [("in", total.tokens_in), ("out", total.tokens_out)] {
            self.tokens
                .get_or_create(&DirectionLabels {
                    direction: direction.to_owned(),
                })
                .set(n);
        }
        self.cost.set(total.cost.micros() as f64 / 1_000_000.0);
        self.unknown_cost
            .set(i64::try_from(total.unknown_cost).unwrap_or(i64::MAX));
        let status = store.status().await?;
        self.cache_entries
            .set(i64::try_from(status.cache_entries).unwrap_or(i64::MAX));
        self.cache_hits
            .set(i64::try_from(status.cache_hits).unwrap_or(i64::MAX));
        self.queue
            .set(writer.map_or(0, |w| i64::try_from(w.queued()).unwrap_or(i64::MAX)));
        self.spilled
            .set(writer.map_or(0, |w| i64::try_from(w.spilled()).unwrap_or(i64::MAX)));
        self.lost
            .set(writer.map_or(0, |w| i64::try_from(w.lost()).unwrap_or(i64::MAX)));
        let sink = writer.and_then(WriterHandle::sink_state).unwrap_or_default();
        self.sink_written
            .set(i64::try_from(sink.written).unwrap_or(i64::MAX));
        self.sink_pending
            .set(i64::try_from(sink.pending).unwrap_or(i64::MAX));
        self.sink_last_write
            .set(sink.last_write.map_or(0, |t| t.micros() / 1_000_000));
        let mut out = String::new();
        encode(&mut out, &self.registry)
            .map_err(|e| rvbbit_store::Error::Internal(format!("metrics encoding failed: {e}")))?;
        Ok(out)
    }
}
