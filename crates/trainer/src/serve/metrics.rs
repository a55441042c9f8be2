//! What the service counts, exposed at `GET /metrics` in Prometheus's text format:
//! requests by path and status, their latency, images predicted and batch sizes,
//! requests in flight, open connections, rejections by cause, and the model served.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    path: &'static str,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabels {
    cause: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    architecture: String,
    parameters: String,
    backend: String,
}

/// Why the service turned something away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    /// A connection beyond `--max-connections`.
    ConnectionLimit,
    /// A request while the inference queue was full.
    QueueFull,
    /// A request whose body did not arrive within `--body-timeout`.
    BodyTimeout,
    /// A request not answered within `--request-timeout`.
    RequestTimeout,
    /// A connection that could not be accepted (out of file descriptors, say).
    AcceptFailed,
    /// A connection closed because its request head did not arrive within
    /// `--header-timeout`.
    HeaderTimeout,
    /// A connection idle or waiting for a request head, closed at the cap to admit a
    /// new one.
    Shed,
}

impl Reject {
    fn cause(self) -> &'static str {
        match self {
            Self::ConnectionLimit => "connection_limit",
            Self::QueueFull => "queue_full",
            Self::BodyTimeout => "body_timeout",
            Self::RequestTimeout => "request_timeout",
            Self::AcceptFailed => "accept_failed",
            Self::HeaderTimeout => "header_timeout",
            Self::Shed => "shed",
        }
    }
}

/// The service's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<PathLabels, Histogram, fn() -> Histogram>,
    images: Counter,
    batch_sizes: Histogram,
    in_flight: Gauge,
    connections: Gauge,
    rejected: Family<CauseLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 100 us to about 13 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 18))
}

impl Metrics {
    /// The metrics of a service of the model `architecture` (with `parameters`) on
    /// `backend`.
    pub fn new(architecture: &str, parameters: usize, backend: &str) -> Self {
        let mut registry = Registry::with_prefix("trainer");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route and status",
            requests.clone(),
        );
        let latency = Family::<PathLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its answer",
            latency.clone(),
        );
        let images = Counter::default();
        registry.register("images_predicted", "Images classified", images.clone());
        let batch_sizes = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        registry.register(
            "prediction_batch_size",
            "Images per prediction request",
            batch_sizes.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being answered now",
            in_flight.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "open_connections",
            "Client connections held open now",
            connections.clone(),
        );
        let rejected = Family::<CauseLabels, Counter>::default();
        registry.register(
            "rejected",
            "Connections and requests turned away, by cause",
            rejected.clone(),
        );
        // Every cause from the start, so that a rate over it exists before the first.
        for cause in [
            Reject::ConnectionLimit,
            Reject::QueueFull,
            Reject::BodyTimeout,
            Reject::RequestTimeout,
            Reject::AcceptFailed,
            Reject::HeaderTimeout,
            Reject::Shed,
        ] {
            let _created = rejected.get_or_create(&CauseLabels {
                cause: cause.cause(),
            });
        }
        let model = Family::<ModelLabels, Gauge>::default();
        model
            .get_or_create(&ModelLabels {
                architecture: architecture.to_string(),
                parameters: parameters.to_string(),
                backend: backend.to_string(),
            })
            .set(1);
        registry.register("model_info", "The model served (always 1)", model);
        Self {
            registry,
            requests,
            latency,
            images,
            batch_sizes,
            in_flight,
            connections,
            rejected,
        }
    }

    /// A request to `route` answered with `status` after `seconds`.
    pub(crate) fn answered(&self, route: &'static str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                path: route,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&PathLabels { path: route })
            .observe(seconds);
    }

    /// A prediction request of `images` images.
    pub(crate) fn predicted(&self, images: usize) {
        self.images.inc_by(images as u64);
        self.batch_sizes.observe(images as f64);
    }

    pub(crate) fn rejected(&self, why: Reject) {
        self.rejected
            .get_or_create(&CauseLabels { cause: why.cause() })
            .inc();
    }

    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn in_flight(&self) -> GaugeGuard {
        self.in_flight.inc();
        GaugeGuard(self.in_flight.clone())
    }

    /// Counts an open connection until the guard is dropped.
    pub(crate) fn connection(&self) -> GaugeGuard {
        self.connections.inc();
        GaugeGuard(self.connections.clone())
    }

    /// The exposition, in Prometheus's text format (version 0.0.4), which every
    /// scraper and `promtool` read.
    pub(crate) fn render(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        classic(&text)
    }
}

/// OpenMetrics text, as the encoder writes it, in Prometheus's text format: there a
/// counter's HELP and TYPE name its samples (`x_total`), and no `# EOF` ends it.
fn classic(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines().filter(|line| *line != "# EOF") {
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Lowers a gauge when dropped, so that every path out of a request or a connection
/// counts it down.
#[derive(Debug)]
pub(crate) struct GaugeGuard(Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_counts_requests_and_names_the_model() {
        let metrics = Metrics::new("784-64-64-10", 55_050, "flex");
        metrics.answered("/api/predict", 200, 0.002);
        metrics.answered("/api/predict", 200, 0.003);
        metrics.answered("/healthz", 200, 0.0001);
        metrics.predicted(3);
        metrics.rejected(Reject::QueueFull);
        let guard = metrics.in_flight();
        let text = metrics.render();
        assert!(
            text.contains(r#"trainer_http_requests_total{path="/api/predict",status="200"} 2"#),
            "{text}"
        );
        assert!(text.contains("trainer_images_predicted_total 3"), "{text}");
        assert!(
            text.contains(r#"trainer_rejected_total{cause="queue_full"} 1"#),
            "{text}"
        );
        assert!(text.contains("trainer_http_requests_in_flight 1"), "{text}");
        assert!(text.contains(r#"trainer_model_info{architecture="784-64-64-10",parameters="55050",backend="flex"} 1"#), "{text}");
        drop(guard);
        assert!(
            metrics
                .render()
                .contains("trainer_http_requests_in_flight 0")
        );
    }
}
