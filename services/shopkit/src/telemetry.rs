//! Logs: one JSON object per line on stdout with Elastic Common Schema field names
//! (`@timestamp`, `log.level`, `message`, `service.name`, `trace.id`, `http.*` …).
//!
//! Fields of the enclosing spans (the request span carries `trace.id` and the `http.*`
//! fields) are merged into every event, so each line stands on its own in Elasticsearch.

use std::fmt;
use std::io::Write;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber: ECS JSON on stdout, filtered by `RUST_LOG`
/// (default `info`). Calling it twice is harmless (tests build many apps).
pub fn init(service_name: &str) {
    init_with_writer(service_name, std::io::stdout);
}

pub fn init_with_writer<W>(service_name: &str, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn,hyper=warn"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .fmt_fields(JsonFields::new())
        .event_format(EcsFormat::new(service_name))
        .with_writer(writer)
        .finish();
    // Already set (a second app in the same test process): keep the first.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Formats one event as an ECS JSON line.
#[derive(Debug, Clone)]
pub struct EcsFormat {
    service_name: String,
}

impl EcsFormat {
    pub fn new(service_name: &str) -> Self {
        Self {
            service_name: service_name.to_owned(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for EcsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "@timestamp".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        line.insert(
            "log.level".into(),
            Value::String(meta.level().as_str().to_lowercase()),
        );
        line.insert(
            "service.name".into(),
            Value::String(self.service_name.clone()),
        );
        line.insert("log.logger".into(), Value::String(meta.target().to_owned()));
        line.insert("ecs.version".into(), Value::String("8.11".into()));

        // Outermost span first so that inner spans override.
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(map)) = serde_json::from_str::<Value>(fields.as_str())
                {
                    line.extend(map);
                }
            }
        }
        let mut visitor = JsonVisitor(&mut line);
        event.record(&mut visitor);
        if !line.contains_key("message") {
            line.insert("message".into(), Value::String(String::new()));
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_owned(), Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
}

/// The Elasticsearch mapping of these lines, for the `logging` profile's index template
/// (`shopctl` installs it): the ECS fields the formatter and the request log write,
/// typed; any other field (a handler's own `sku = …`) is a keyword through the dynamic
/// template. Log lines carry dotted keys; Filebeat expands them into these objects.
pub fn ecs_mappings() -> Value {
    let keyword = || serde_json::json!({ "type": "keyword" });
    serde_json::json!({
        "dynamic_templates": [{
            "strings_as_keyword": {
                "match_mapping_type": "string",
                "mapping": { "type": "keyword", "ignore_above": 1024 }
            }
        }],
        "properties": {
            "@timestamp": { "type": "date" },
            "message": { "type": "match_only_text" },
            "error": { "type": "text" },
            "log": { "properties": { "level": keyword(), "logger": keyword() } },
            "service": { "properties": { "name": keyword() } },
            "ecs": { "properties": { "version": keyword() } },
            "trace": { "properties": { "id": keyword() } },
            "url": { "properties": { "path": keyword() } },
            "event": { "properties": { "duration": { "type": "long" } } },
            "http": { "properties": {
                "request": { "properties": { "id": keyword(), "method": keyword() } },
                "response": { "properties": { "status_code": { "type": "long" } } }
            } }
        }
    })
}

/// A `MakeWriter` that appends to a shared buffer; lets tests read what was logged.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    pub fn contents(&self) -> String {
        let buf = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = Self;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_ecs_json_with_span_fields() {
        let logs = CapturedLogs::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(EcsFormat::new("catalog"))
            .with_writer(logs.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                "trace.id" = "abc123",
                "http.request.method" = "GET"
            );
            let _guard = span.enter();
            tracing::warn!(sku = "SKU-1", "stock low");
        });
        let line: Value = serde_json::from_str(logs.contents().trim()).unwrap();
        assert_eq!(line["message"], "stock low");
        assert_eq!(line["log.level"], "warn");
        assert_eq!(line["service.name"], "catalog");
        assert_eq!(line["trace.id"], "abc123");
        assert_eq!(line["http.request.method"], "GET");
        assert_eq!(line["sku"], "SKU-1");
        assert!(line["@timestamp"].as_str().unwrap().ends_with('Z'));
    }

    /// The type the mapping gives a dotted key, walking `properties`.
    fn mapped_type<'a>(mappings: &'a Value, key: &str) -> Option<&'a str> {
        if let Some(field) = mappings["properties"].get(key) {
            return field["type"].as_str();
        }
        let mut node = mappings;
        for part in key.split('.') {
            node = node["properties"].get(part)?;
        }
        node["type"].as_str()
    }

    /// Every field of a real request log line is mapped, with a type that takes its value.
    #[tokio::test]
    async fn the_index_mapping_covers_every_field_of_a_request_line() {
        use tower::ServiceExt;
        let logs = CapturedLogs::default();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(EcsFormat::new("catalog"))
            .with_writer(logs.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let app = crate::http::Kit::new("catalog").wrap(axum::Router::new());
        let request = axum::http::Request::get("/no-such-route")
            .header("x-request-id", "req-1")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 404);
        tracing::error!(error = "connection refused", "a failure");

        let mappings = ecs_mappings();
        let text = logs.contents();
        let lines: Vec<Map<String, Value>> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let request_line = lines
            .iter()
            .find(|l| l.contains_key("http.response.status_code"))
            .unwrap_or_else(|| panic!("no request line in {text}"));
        assert_eq!(request_line["http.request.id"], "req-1");
        for line in &lines {
            for (key, value) in line {
                let ty = mapped_type(&mappings, key)
                    .unwrap_or_else(|| panic!("{key} (in {line:?}) is not in the index mapping"));
                let fits = match value {
                    Value::String(_) => {
                        ["keyword", "text", "match_only_text", "date"].contains(&ty)
                    }
                    Value::Number(_) => ty == "long",
                    _ => false,
                };
                assert!(fits, "{key} = {value} does not fit its mapped type {ty}");
            }
        }
    }
}
