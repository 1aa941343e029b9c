//! Twilio's Programmable Messaging: `POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json`
//! with HTTP basic auth (account SID : auth token) and a form body `To`, `From` (or
//! `MessagingServiceSid`), `Body`; `201 Created` with the message's JSON (`sid`, `status`,
//! …) on success, `{"code", "message", "more_info", "status"}` otherwise.

use serde::Deserialize;

use super::{Outgoing, Provider, SendError, Sent, http_failure, network_failure};

pub const NAME: &str = "twilio";
/// Twilio's API (`TWILIO_API_BASE` replaces it, for tests).
pub const DEFAULT_BASE: &str = "https://api.twilio.com";

/// Where texts come from: a Twilio number, or a Messaging Service (which picks one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum From {
    Number(String),
    MessagingService(String),
}

#[derive(Clone)]
pub struct Twilio {
    http: reqwest::Client,
    base: String,
    account_sid: String,
    auth_token: String,
    from: From,
}

impl std::fmt::Debug for Twilio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Twilio")
            .field("base", &self.base)
            .field("account_sid", &self.account_sid)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// The form fields of one message.
pub fn form(from: &From, message: &Outgoing) -> Vec<(&'static str, String)> {
    let mut fields = vec![("To", message.to.clone())];
    match from {
        From::Number(number) => fields.push(("From", number.clone())),
        From::MessagingService(sid) => fields.push(("MessagingServiceSid", sid.clone())),
    }
    fields.push(("Body", message.text.clone()));
    fields
}

#[derive(Debug, Deserialize)]
struct Created {
    sid: String,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    more_info: Option<String>,
}

/// The error text of a Twilio error body; the raw body when it is not Twilio's shape.
pub fn error_text(body: &str) -> String {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody {
            message: Some(message),
            code,
            more_info,
        }) => {
            let mut text = message;
            if let Some(code) = code {
                text.push_str(&format!(" (code {code})"));
            }
            if let Some(info) = more_info {
                text.push_str(&format!(" see {info}"));
            }
            text
        }
        _ => body.chars().take(500).collect(),
    }
}

impl Twilio {
    pub fn new(
        http: reqwest::Client,
        base: &str,
        account_sid: String,
        auth_token: String,
        from: From,
    ) -> Self {
        Twilio {
            http,
            base: base.trim_end_matches('/').to_owned(),
            account_sid,
            auth_token,
            from,
        }
    }

    pub fn request(&self, message: &Outgoing) -> reqwest::Result<reqwest::Request> {
        self.http
            .post(format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                self.base, self.account_sid
            ))
            .basic_auth(&self.account_sid, Some(&self.auth_token))
            .form(&form(&self.from, message))
            .build()
    }
}

#[async_trait::async_trait]
impl Provider for Twilio {
    fn name(&self) -> &'static str {
        NAME
    }

    fn is_live(&self) -> bool {
        true
    }

    async fn send(&self, message: &Outgoing) -> Result<Sent, SendError> {
        let request = self
            .request(message)
            .map_err(|e| SendError::Permanent(format!("building the Twilio request: {e}")))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| network_failure(NAME, &e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            let created: Created = serde_json::from_str(&body).map_err(|e| {
                SendError::retryable(format!(
                    "twilio answered {status} without a message sid ({e}): {}",
                    body.chars().take(200).collect::<String>()
                ))
            })?;
            return Ok(Sent {
                provider_ref: Some(created.sid),
            });
        }
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

    #[test]
    fn the_request_names_the_account_and_authenticates_with_its_token() {
        let t = Twilio::new(
            reqwest::Client::new(),
            DEFAULT_BASE,
            "AC123".into(),
            "secret".into(),
            From::Number("+15005550006".into()),
        );
        let m = Outgoing {
            id: uuid::Uuid::now_v7(),
            to: "+4930123456".into(),
            subject: None,
            text: "Order 1 & 2 shipped".into(),
            html: None,
        };
        let r = t.request(&m).unwrap();
        assert_eq!(
            r.url().as_str(),
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json"
        );
        // base64("AC123:secret")
        assert_eq!(r.headers()["authorization"], "Basic QUMxMjM6c2VjcmV0");
        assert_eq!(
            r.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        let body = std::str::from_utf8(r.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            "To=%2B4930123456&From=%2B15005550006&Body=Order+1+%26+2+shipped"
        );
        let service = form(&From::MessagingService("MG9".into()), &m);
        assert_eq!(service[1], ("MessagingServiceSid", "MG9".to_owned()));
    }

    #[test]
    fn error_bodies_become_readable_text() {
        let body = r#"{"code": 21211, "message": "The 'To' number +1555 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        assert_eq!(
            error_text(body),
            "The 'To' number +1555 is not a valid phone number. (code 21211) see https://www.twilio.com/docs/errors/21211"
        );
    }
}
