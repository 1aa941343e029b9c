//! Any SMTP server (a relay of the merchant's mail provider, a local Postfix) through
//! lettre, over tokio with rustls: STARTTLS on 587 by default, implicit TLS (465), or
//! plain (a relay on the same host; tests). One `multipart/alternative` message per
//! email: the plain text, then the HTML.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::sendgrid::Sender;
use super::{Outgoing, Provider, SendError, Sent};

pub const NAME: &str = "smtp";

/// How the connection is protected (`SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only for a relay on the same host or network.
    None,
}

impl std::str::FromStr for Security {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "starttls" => Ok(Security::StartTls),
            "tls" => Ok(Security::Tls),
            "none" => Ok(Security::None),
            _ => Err("expected starttls, tls or none".into()),
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// User name and password, when the server wants them.
    pub credentials: Option<(String, String)>,
}

#[derive(Clone)]
pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Sender,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// The MIME message of one email.
pub fn message(from: &Sender, outgoing: &Outgoing) -> anyhow::Result<Message> {
    let from: Mailbox = Mailbox::new(Some(from.name.clone()), from.email.parse()?);
    let to: Mailbox = outgoing
        .to
        .parse()
        .map_err(|e| anyhow::anyhow!("{:?} is not an email address: {e}", outgoing.to))?;
    let builder = Message::builder()
        .from(from.clone())
        .to(to)
        .message_id(Some(format!("<{}@{}>", outgoing.id, from.email.domain())))
        .subject(outgoing.subject.clone().unwrap_or_default());
    let message = match &outgoing.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            outgoing.text.clone(),
            html.clone(),
        ))?,
        None => builder.body(outgoing.text.clone())?,
    };
    Ok(message)
}

impl Smtp {
    pub fn new(settings: &SmtpSettings, from: Sender) -> anyhow::Result<Smtp> {
        let builder = match settings.security {
            Security::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)?
            }
            Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)?,
            Security::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
        };
        let mut builder = builder
            .port(settings.port)
            .timeout(Some(Duration::from_secs(20)));
        if let Some((user, password)) = &settings.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Smtp {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait::async_trait]
impl Provider for Smtp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn is_live(&self) -> bool {
        true
    }

    async fn send(&self, outgoing: &Outgoing) -> Result<Sent, SendError> {
        let message =
            message(&self.from, outgoing).map_err(|e| SendError::Permanent(format!("{e:#}")))?;
        match self.transport.send(message).await {
            Ok(response) => Ok(Sent {
                provider_ref: Some(
                    format!(
                        "{} {}",
                        response.code(),
                        response.message().collect::<Vec<_>>().join(" ")
                    )
                    .trim()
                    .to_owned(),
                ),
            }),
            // 5xx: the server refused this message (unknown mailbox, policy).
            Err(err) if err.is_permanent() => Err(SendError::Permanent(format!(
                "the SMTP server refused: {err}"
            ))),
            // 4xx replies, connection and TLS failures, timeouts.
            Err(err) => Err(SendError::retryable(format!("SMTP: {err}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_multipart_alternative_text_then_html() {
        let from = Sender {
            email: "shop@example.com".into(),
            name: "Example Shop".into(),
        };
        let outgoing = Outgoing {
            id: uuid::Uuid::now_v7(),
            to: "buyer@example.com".into(),
            subject: Some("Your order".into()),
            text: "plain body".into(),
            html: Some("<p>html body</p>".into()),
        };
        let raw = String::from_utf8(message(&from, &outgoing).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("From: \"Example Shop\" <shop@example.com>"),
            "{raw}"
        );
        assert!(raw.contains("To: buyer@example.com"), "{raw}");
        assert!(raw.contains("Subject: Your order"), "{raw}");
        assert!(
            raw.contains(&format!("Message-ID: <{}@example.com>", outgoing.id)),
            "{raw}"
        );
        assert!(raw.contains("multipart/alternative"), "{raw}");
        let text = raw.find("text/plain").unwrap();
        let html = raw.find("text/html").unwrap();
        assert!(text < html);
        assert!(
            message(
                &from,
                &Outgoing {
                    to: "not an address".into(),
                    ..outgoing
                }
            )
            .is_err()
        );
    }
}
