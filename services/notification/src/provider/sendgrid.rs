//! SendGrid's v3 Mail Send API: `POST {base}/v3/mail/send` with `Authorization: Bearer
//! <API key>` and a JSON body; `202 Accepted` (empty body, the message's id in
//! `X-Message-Id`) on success, `{"errors": [{"message", "field", "help"}]}` otherwise.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Outgoing, Provider, SendError, Sent, http_failure, network_failure};

pub const NAME: &str = "sendgrid";
/// SendGrid's API (`SENDGRID_API_BASE` replaces it, for tests and regional endpoints).
pub const DEFAULT_BASE: &str = "https://api.sendgrid.com";

/// Who the shop's emails are from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub email: String,
    pub name: String,
}

#[derive(Clone)]
pub struct SendGrid {
    http: reqwest::Client,
    base: String,
    api_key: String,
    from: Sender,
}

impl std::fmt::Debug for SendGrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendGrid")
            .field("base", &self.base)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// The Mail Send body of one message: one personalization with one recipient, plain
/// text first (RFC 2046: the preferred alternative last).
pub fn mail_body(from: &Sender, message: &Outgoing) -> Value {
    let mut content = vec![json!({"type": "text/plain", "value": message.text})];
    if let Some(html) = &message.html {
        content.push(json!({"type": "text/html", "value": html}));
    }
    json!({
        "personalizations": [{"to": [{"email": message.to}]}],
        "from": {"email": from.email, "name": from.name},
        "subject": message.subject.as_deref().unwrap_or_default(),
        "content": content,
        // Comes back in SendGrid's event webhook: which of our messages it was.
        "custom_args": {"shopstack_message_id": message.id.to_string()},
    })
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Debug, Deserialize)]
struct ErrorItem {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    help: Option<String>,
}

/// The error text of a SendGrid error body: each error's message, with its field and
/// help; the raw body when it is not SendGrid's shape.
pub fn error_text(body: &str) -> String {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(parsed) if !parsed.errors.is_empty() => parsed
            .errors
            .iter()
            .map(|e| {
                let mut text = e.message.clone().unwrap_or_else(|| "error".into());
                if let Some(field) = e.field.as_deref().filter(|f| !f.is_empty()) {
                    text.push_str(&format!(" (field {field})"));
                }
                if let Some(help) = e.help.as_deref().filter(|h| !h.is_empty()) {
                    text.push_str(&format!(" see {help}"));
                }
                text
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.chars().take(500).collect(),
    }
}

impl SendGrid {
    pub fn new(http: reqwest::Client, base: &str, api_key: String, from: Sender) -> Self {
        SendGrid {
            http,
            base: base.trim_end_matches('/').to_owned(),
            api_key,
            from,
        }
    }

    /// The request for one message.
    pub fn request(&self, message: &Outgoing) -> reqwest::Result<reqwest::Request> {
        self.http
            .post(format!("{}/v3/mail/send", self.base))
            .bearer_auth(&self.api_key)
            .json(&mail_body(&self.from, message))
            .build()
    }
}

#[async_trait::async_trait]
impl Provider for SendGrid {
    fn name(&self) -> &'static str {
        NAME
    }

    fn is_live(&self) -> bool {
        true
    }

    async fn send(&self, message: &Outgoing) -> Result<Sent, SendError> {
        let request = self
            .request(message)
            .map_err(|e| SendError::Permanent(format!("building the SendGrid request: {e}")))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| network_failure(NAME, &e))?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if status.is_success() {
            return Ok(Sent {
                provider_ref: header("x-message-id"),
            });
        }
        let retry_after = header("retry-after");
        let body = response.text().await.unwrap_or_default();
        Err(http_failure(
            NAME,
            status,
            retry_after.as_deref(),
            &error_text(&body),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Outgoing {
        Outgoing {
            id: uuid::Uuid::now_v7(),
            to: "buyer@example.com".into(),
            subject: Some("Hi".into()),
            text: "plain".into(),
            html: Some("<p>html</p>".into()),
        }
    }

    #[test]
    fn the_request_is_v3_mail_send_with_a_bearer_key() {
        let sg = SendGrid::new(
            reqwest::Client::new(),
            "https://api.sendgrid.com/",
            "SG.key".into(),
            Sender {
                email: "shop@example.com".into(),
                name: "Shop".into(),
            },
        );
        let m = message();
        let request = sg.request(&m).unwrap();
        assert_eq!(request.method(), reqwest::Method::POST);
        assert_eq!(
            request.url().as_str(),
            "https://api.sendgrid.com/v3/mail/send"
        );
        assert_eq!(request.headers()["authorization"], "Bearer SG.key");
        assert_eq!(request.headers()["content-type"], "application/json");
        let body: Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body["personalizations"],
            json!([{"to": [{"email": "buyer@example.com"}]}])
        );
        assert_eq!(
            body["from"],
            json!({"email": "shop@example.com", "name": "Shop"})
        );
        assert_eq!(body["subject"], "Hi");
        assert_eq!(
            body["content"],
            json!([{"type": "text/plain", "value": "plain"}, {"type": "text/html", "value": "<p>html</p>"}])
        );
    }

    #[test]
    fn error_bodies_become_readable_text() {
        let body = r#"{"errors":[{"message":"The from address does not match a verified Sender Identity.","field":"from","help":"https://sendgrid.com/docs/for-developers/sending-email/sender-identity/"}]}"#;
        assert_eq!(
            error_text(body),
            "The from address does not match a verified Sender Identity. (field from) see https://sendgrid.com/docs/for-developers/sending-email/sender-identity/"
        );
        assert_eq!(error_text("upstream timeout"), "upstream timeout");
    }
}
