//! The logging profile's set-up calls against local servers speaking Elasticsearch's
//! index template API and Kibana's data views API, checking each request as those
//! products do (Kibana's `kbn-xsrf` rule, Elasticsearch's error shape).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use serde_json::{Value, json};

#[derive(Default)]
struct Seen {
    templates: Vec<(String, Value)>,
    data_views: Vec<Value>,
}

type Shared = Arc<Mutex<Seen>>;

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// `PUT /_index_template/<name>`: Elasticsearch validates the composable template's
/// shape and answers `{"acknowledged": true}`.
async fn index_template(
    State(seen): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let error = |reason: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "error": {
                    "root_cause": [{ "type": "x_content_parse_exception", "reason": reason }],
                    "type": "x_content_parse_exception", "reason": reason,
                },
                "status": 400,
            })),
        )
            .into_response()
    };
    if !is_json(&headers) {
        return (
            StatusCode::NOT_ACCEPTABLE,
            axum::Json(json!({"error": "Content-Type header [] is not supported", "status": 406})),
        )
            .into_response();
    }
    let Ok(template) = serde_json::from_str::<Value>(&body) else {
        return error("failed to parse the template");
    };
    if template["index_patterns"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        return error("[index_template] index_patterns is required");
    }
    if template["template"]["mappings"]["properties"]
        .as_object()
        .is_none()
    {
        return error("[index_template] template.mappings.properties is required");
    }
    if name.starts_with('_') || name.chars().any(char::is_uppercase) {
        return error("invalid index template name");
    }
    seen.lock().unwrap().templates.push((name, template));
    axum::Json(json!({ "acknowledged": true })).into_response()
}

/// `POST /api/data_views/data_view`: Kibana refuses writes without `kbn-xsrf`.
async fn data_view(State(seen): State<Shared>, headers: HeaderMap, body: String) -> Response {
    if !headers.contains_key("kbn-xsrf") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "statusCode": 400, "error": "Bad Request",
                "message": "Request must contain a kbn-xsrf header.",
            })),
        )
            .into_response();
    }
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if request["data_view"]["title"].as_str().is_none() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "statusCode": 400, "error": "Bad Request",
                "message": "[request body.data_view.title]: expected value of type [string] but got [undefined]",
            })),
        )
            .into_response();
    }
    let view = request["data_view"].clone();
    seen.lock().unwrap().data_views.push(request);
    axum::Json(json!({ "data_view": view })).into_response()
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn servers() -> (String, String, Shared) {
    let seen = Shared::default();
    let es = serve(
        Router::new()
            .route("/_index_template/{name}", put(index_template))
            .with_state(seen.clone()),
    )
    .await;
    let kibana = serve(
        Router::new()
            .route("/api/data_views/data_view", post(data_view))
            .with_state(seen.clone()),
    )
    .await;
    (es, kibana, seen)
}

#[tokio::test]
async fn installs_the_stream_template_and_the_data_view() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (es, kibana, seen) = servers().await;
    shopctl::logging::install(&es, &kibana, "demo")
        .await
        .unwrap();
    // Idempotent: a second `up` sends both again and succeeds.
    shopctl::logging::install(&es, &kibana, "demo")
        .await
        .unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.templates.len(), 2);
    let (name, template) = &seen.templates[0];
    assert_eq!(name, "logs-shopstack-demo");
    assert_eq!(template["index_patterns"], json!(["logs-shopstack-demo*"]));
    assert_eq!(template["data_stream"], json!({}));
    assert!(
        template["priority"].as_i64().unwrap() > 100,
        "beats logs-*-*"
    );
    let properties = &template["template"]["mappings"]["properties"];
    assert_eq!(properties["@timestamp"]["type"], "date");
    assert_eq!(
        properties["http"]["properties"]["response"]["properties"]["status_code"]["type"],
        "long"
    );
    assert_eq!(seen.data_views.len(), 2);
    let view = &seen.data_views[0];
    assert_eq!(view["data_view"]["title"], "logs-shopstack-demo*");
    assert_eq!(view["data_view"]["timeFieldName"], "@timestamp");
    assert_eq!(view["override"], true);
}

#[tokio::test]
async fn a_refusal_says_what_was_refused_and_why() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (_, kibana, _) = servers().await;
    // An Elasticsearch that rejects the template (an uppercase name is invalid there).
    let failing = serve(Router::new().route(
        "/_index_template/{name}",
        put(|| async {
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({
                    "error": { "type": "illegal_argument_exception", "reason": "composable template [logs-shopstack-demo] template after composition is invalid" },
                    "status": 400,
                })),
            )
        }),
    ))
    .await;
    let err = shopctl::logging::install(&failing, &kibana, "demo")
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("index template") && message.contains("after composition is invalid"),
        "{message}"
    );
}
