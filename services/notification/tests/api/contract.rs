//! The providers against local servers speaking the documented wire formats: each
//! request is checked field by field, and the documented answers — success and error
//! shapes — come back as the worker needs them.

use std::time::Duration;

use notification::provider::sendgrid::Sender;
use notification::provider::smtp::{Security, SmtpSettings};
use notification::provider::twilio::From;
use notification::provider::{Outgoing, Provider, SendError, SendGrid, Smtp, Twilio, http_client};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{FakeHttp, FakeSmtp, install_tls, json_answer};

fn email() -> Outgoing {
    Outgoing {
        id: Uuid::now_v7(),
        to: "buyer@example.com".into(),
        subject: Some("Your order 1234 is confirmed".into()),
        text: "Thank you: 2 × Mug".into(),
        html: Some("<p>Thank you: 2 &times; Mug</p>".into()),
    }
}

fn sender() -> Sender {
    Sender {
        email: "shop@example.com".into(),
        name: "Example Shop".into(),
    }
}

#[tokio::test]
async fn sendgrid_gets_v3_mail_send_with_bearer_auth_and_the_documented_body() {
    install_tls();
    let fake = FakeHttp::start(vec![(
        202,
        vec![("x-message-id", "sg-msg-1".to_owned())],
        String::new(),
    )])
    .await;
    let provider = SendGrid::new(
        http_client().unwrap(),
        &fake.url,
        "SG.test-key".into(),
        sender(),
    );
    let message = email();
    let sent = provider.send(&message).await.unwrap();
    assert_eq!(sent.provider_ref.as_deref(), Some("sg-msg-1"));

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v3/mail/send");
    assert_eq!(r.header("authorization"), "Bearer SG.test-key");
    assert_eq!(r.header("content-type"), "application/json");
    let body = r.json();
    assert_eq!(
        body["personalizations"],
        json!([{"to": [{"email": "buyer@example.com"}]}])
    );
    assert_eq!(
        body["from"],
        json!({"email": "shop@example.com", "name": "Example Shop"})
    );
    assert_eq!(body["subject"], "Your order 1234 is confirmed");
    assert_eq!(
        body["content"],
        json!([
            {"type": "text/plain", "value": "Thank you: 2 × Mug"},
            {"type": "text/html", "value": "<p>Thank you: 2 &times; Mug</p>"},
        ])
    );
    assert_eq!(
        body["custom_args"]["shopstack_message_id"],
        message.id.to_string()
    );
}

#[tokio::test]
async fn sendgrid_errors_are_permanent_with_their_text_except_429_and_5xx() {
    install_tls();
    let fake = FakeHttp::start(vec![json_answer(
        400,
        json!({"errors": [{"message": "The from address does not match a verified Sender Identity.", "field": "from", "help": "https://sendgrid.com/docs/for-developers/sending-email/sender-identity/"}]}),
    )])
    .await;
    let provider = SendGrid::new(http_client().unwrap(), &fake.url, "SG.k".into(), sender());
    let err = provider.send(&email()).await.unwrap_err();
    let SendError::Permanent(text) = err else {
        panic!("{err:?}")
    };
    assert!(text.contains("400"), "{text}");
    assert!(
        text.contains("does not match a verified Sender Identity. (field from)"),
        "{text}"
    );

    fake.answer_next(vec![(
        429,
        vec![
            ("retry-after", "17".to_owned()),
            ("content-type", "application/json".to_owned()),
        ],
        json!({"errors": [{"message": "too many requests", "field": null, "help": null}]})
            .to_string(),
    )]);
    let err = provider.send(&email()).await.unwrap_err();
    assert_eq!(
        err,
        SendError::Retryable {
            message: "sendgrid answered 429 Too Many Requests: too many requests".into(),
            retry_after: Some(Duration::from_secs(17)),
        }
    );
    fake.answer_next(vec![(503, vec![], "upstream unavailable".into())]);
    assert!(matches!(
        provider.send(&email()).await.unwrap_err(),
        SendError::Retryable {
            retry_after: None,
            ..
        }
    ));
}

#[tokio::test]
async fn a_provider_that_is_not_there_is_retried() {
    install_tls();
    // A port nobody listens on: bind one and drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let provider = SendGrid::new(
        http_client().unwrap(),
        &format!("http://127.0.0.1:{port}"),
        "k".into(),
        sender(),
    );
    let err = provider.send(&email()).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Retryable { message, .. } if message.contains("did not answer")),
        "{err:?}"
    );
}

fn text_message() -> Outgoing {
    Outgoing {
        id: Uuid::now_v7(),
        to: "+4930123456".into(),
        subject: None,
        text: "Example Shop: order 1234 confirmed, 37.97 USD paid.".into(),
        html: None,
    }
}

#[tokio::test]
async fn twilio_gets_the_accounts_messages_resource_with_basic_auth_and_a_form() {
    install_tls();
    let fake = FakeHttp::start(vec![json_answer(
        201,
        json!({"sid": "SM1234567890abcdef1234567890abcdef", "status": "queued", "to": "+4930123456",
               "from": "+15005550006", "body": "…", "account_sid": "AC123", "error_code": null}),
    )])
    .await;
    let provider = Twilio::new(
        http_client().unwrap(),
        &fake.url,
        "AC123".into(),
        "auth-token".into(),
        From::Number("+15005550006".into()),
    );
    let sent = provider.send(&text_message()).await.unwrap();
    assert_eq!(
        sent.provider_ref.as_deref(),
        Some("SM1234567890abcdef1234567890abcdef")
    );
    let r = &fake.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/2010-04-01/Accounts/AC123/Messages.json");
    // base64("AC123:auth-token")
    assert_eq!(r.header("authorization"), "Basic QUMxMjM6YXV0aC10b2tlbg==");
    assert_eq!(
        r.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        r.form(),
        [
            ("To".to_owned(), "+4930123456".to_owned()),
            ("From".to_owned(), "+15005550006".to_owned()),
            (
                "Body".to_owned(),
                "Example Shop: order 1234 confirmed, 37.97 USD paid.".to_owned()
            ),
        ]
    );

    let service = Twilio::new(
        http_client().unwrap(),
        &fake.url,
        "AC123".into(),
        "auth-token".into(),
        From::MessagingService("MG0001".into()),
    );
    service.send(&text_message()).await.unwrap();
    let form = fake.requests()[1].form();
    assert_eq!(
        form[1],
        ("MessagingServiceSid".to_owned(), "MG0001".to_owned())
    );
}

#[tokio::test]
async fn twilio_errors_carry_code_and_message_and_429_is_retried() {
    install_tls();
    let fake = FakeHttp::start(vec![json_answer(
        400,
        json!({"code": 21211, "message": "The 'To' number +4930123456 is not a valid phone number.",
               "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}),
    )])
    .await;
    let provider = Twilio::new(
        http_client().unwrap(),
        &fake.url,
        "AC123".into(),
        "t".into(),
        From::Number("+15005550006".into()),
    );
    let SendError::Permanent(text) = provider.send(&text_message()).await.unwrap_err() else {
        panic!()
    };
    assert!(
        text.contains("is not a valid phone number. (code 21211)"),
        "{text}"
    );

    fake.answer_next(vec![(
        429,
        vec![("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".to_owned())],
        json!({"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429", "status": 429}).to_string(),
    )]);
    // A date in the past: retry at once (the back-off still applies in the worker).
    let err = provider.send(&text_message()).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Retryable { retry_after: Some(d), message } if d.is_zero() && message.contains("code 20429")),
        "{err:?}"
    );
}

#[tokio::test]
async fn smtp_speaks_ehlo_mail_rcpt_data_quit_and_sends_multipart_alternative() {
    install_tls();
    let server = FakeSmtp::start(false).await;
    let settings = SmtpSettings {
        host: "127.0.0.1".into(),
        port: server.port,
        security: Security::None,
        credentials: None,
    };
    let provider = Smtp::new(&settings, sender()).unwrap();
    let message = email();
    let sent = provider.send(&message).await.unwrap();
    assert!(sent.provider_ref.unwrap().contains("queued as FAKE123"));

    let sessions = server.sessions.lock().unwrap().clone();
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert!(s.ehlo.starts_with("EHLO "), "{s:?}");
    assert!(
        s.mail_from.starts_with("MAIL FROM:<shop@example.com>"),
        "{s:?}"
    );
    assert_eq!(s.rcpt_to, ["RCPT TO:<buyer@example.com>"]);
    assert!(s.quit);
    let data = &s.data;
    assert!(
        data.contains("From: \"Example Shop\" <shop@example.com>\r\n"),
        "{data}"
    );
    assert!(data.contains("To: buyer@example.com\r\n"), "{data}");
    assert!(
        data.contains("Subject: Your order 1234 is confirmed\r\n"),
        "{data}"
    );
    assert!(
        data.contains(&format!("Message-ID: <{}@example.com>", message.id)),
        "{data}"
    );
    assert!(
        data.contains("Content-Type: multipart/alternative;"),
        "{data}"
    );
    let plain = data.find("Content-Type: text/plain").unwrap();
    let html = data.find("Content-Type: text/html").unwrap();
    assert!(plain < html, "{data}");
}

#[tokio::test]
async fn smtp_refusals_are_permanent_and_an_absent_server_is_retried() {
    install_tls();
    let server = FakeSmtp::start(true).await;
    let settings = SmtpSettings {
        host: "127.0.0.1".into(),
        port: server.port,
        security: Security::None,
        credentials: None,
    };
    let err = Smtp::new(&settings, sender())
        .unwrap()
        .send(&email())
        .await
        .unwrap_err();
    let SendError::Permanent(text) = err else {
        panic!("{err:?}")
    };
    assert!(text.contains("No such user"), "{text}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gone = SmtpSettings { port, ..settings };
    let err = Smtp::new(&gone, sender())
        .unwrap()
        .send(&email())
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Retryable { .. }), "{err:?}");
}
