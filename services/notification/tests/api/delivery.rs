//! The delivery worker with a clock of its own: retries honour `Retry-After`, a message
//! is sent exactly once, parked after the last attempt, failed at once on a refusal.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use notification::delivery::{Policy, Providers, run_once};
use notification::provider::sendgrid::Sender;
use notification::provider::{Outbox, SendGrid, http_client};
use notification::store::Status;
use serde_json::json;
use uuid::Uuid;

use shopkit::events::Envelope;

use crate::helpers::{FakeHttp, TestApp, json_answer, order_created, order_paid};

fn sendgrid(fake: &FakeHttp) -> Providers {
    let provider = SendGrid::new(
        http_client().unwrap(),
        &fake.url,
        "SG.k".into(),
        Sender {
            email: "shop@example.com".into(),
            name: "Shop".into(),
        },
    );
    Providers {
        email: Arc::new(provider),
        sms: Some(Arc::new(Outbox)),
    }
}

fn policy(max_attempts: u32) -> Policy {
    Policy {
        max_attempts,
        base_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(300),
        ..Policy::default()
    }
}

/// An order confirmation waiting to be sent.
async fn pending_confirmation(app: &TestApp) -> Uuid {
    let buyer = Uuid::now_v7();
    let order = Uuid::now_v7();
    // The address only (no verification email): the confirmation is the one message.
    app.deliver(&Envelope::new(
        "user",
        "user.email_verified",
        json!({"user_id": buyer, "email": "buyer@example.com"}),
    ))
    .await;
    app.deliver(&order_created(order, buyer)).await;
    app.deliver(&order_paid(order, buyer)).await;
    let items = app.messages("kind=order_confirmation").await;
    assert_eq!(items.len(), 1);
    items[0]["id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn two_503s_with_retry_after_then_202_send_exactly_once() {
    let app = TestApp::new().await;
    let id = pending_confirmation(&app).await;
    let http_date = (Utc::now() + chrono::Duration::seconds(40))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let unavailable = |retry_after: String| {
        (
            503,
            vec![
                ("retry-after", retry_after),
                ("content-type", "application/json".to_owned()),
            ],
            json!({"errors": [{"message": "service unavailable", "field": null, "help": null}]})
                .to_string(),
        )
    };
    let fake = FakeHttp::start(vec![
        unavailable("30".into()),
        unavailable(http_date),
        (
            202,
            vec![("x-message-id", "sg-final".to_owned())],
            String::new(),
        ),
    ])
    .await;
    let providers = sendgrid(&fake);
    let policy = policy(8);
    let t0 = Utc::now();

    let first = run_once(app.pool(), &providers, &policy, t0).await.unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    let attempt = first.iter().find(|a| a.id == id).unwrap();
    assert_eq!(attempt.status, Status::Pending);
    // Retry-After: 30 is longer than the 1 s back-off, so it wins.
    assert_eq!(
        attempt.next_attempt_at,
        Some(t0 + chrono::Duration::seconds(30))
    );

    // Not due yet: nothing happens.
    assert!(
        run_once(
            app.pool(),
            &providers,
            &policy,
            t0 + chrono::Duration::seconds(29)
        )
        .await
        .unwrap()
        .is_empty()
    );

    let t1 = t0 + chrono::Duration::seconds(30);
    let second = run_once(app.pool(), &providers, &policy, t1).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].status, Status::Pending);
    // The HTTP date said ~40 s from (real) now.
    let wait = (second[0].next_attempt_at.unwrap() - t1).num_seconds();
    assert!((37..=41).contains(&wait), "{wait}");

    let third = run_once(
        app.pool(),
        &providers,
        &policy,
        t1 + chrono::Duration::seconds(41),
    )
    .await
    .unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].status, Status::Sent);
    assert_eq!(third[0].attempt, 3);

    // Sent is final: later passes send nothing.
    assert!(
        run_once(
            app.pool(),
            &providers,
            &policy,
            t0 + chrono::Duration::days(1)
        )
        .await
        .unwrap()
        .is_empty()
    );
    let to_buyer: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| {
            r.json()["subject"]
                .as_str()
                .unwrap()
                .contains("is confirmed")
        })
        .collect();
    assert_eq!(to_buyer.len(), 3, "two refused attempts and one delivery");
    let message = app.get(&app.admin, &format!("/messages/{id}")).await.ok();
    assert_eq!(message["status"], "sent");
    assert_eq!(message["attempts"], 3);
    assert_eq!(message["provider"], "sendgrid");
    assert_eq!(message["provider_ref"], "sg-final");
    assert!(message["sent_at"].is_string());
    assert!(message["last_error"].is_null());
}

#[tokio::test]
async fn a_provider_that_only_answers_503_parks_the_message_after_the_last_attempt() {
    let app = TestApp::new().await;
    let fake = FakeHttp::start(vec![json_answer(
        503,
        json!({"errors": [{"message": "service unavailable", "field": null, "help": null}]}),
    )])
    .await;
    let id = pending_confirmation(&app).await;
    let providers = sendgrid(&fake);
    let policy = policy(3);
    let mut now = Utc::now();
    let mut seen = Vec::new();
    for _ in 0..6 {
        for a in run_once(app.pool(), &providers, &policy, now)
            .await
            .unwrap()
        {
            if a.id == id {
                seen.push(a.status);
            }
        }
        now += chrono::Duration::seconds(600);
    }
    assert_eq!(seen, [Status::Pending, Status::Pending, Status::Parked]);
    let parked = app.messages("status=parked").await;
    assert_eq!(parked.len(), 1);
    let confirmation = &parked[0];
    assert_eq!(confirmation["id"], id.to_string());
    assert_eq!(confirmation["attempts"], 3);
    assert!(
        confirmation["last_error"].as_str().unwrap().contains("503"),
        "{confirmation}"
    );
    assert_eq!(fake.requests().len(), 3, "three attempts, then no more");
}

#[tokio::test]
async fn a_refusal_fails_the_message_at_once_with_the_providers_reason() {
    let app = TestApp::new().await;
    let fake = FakeHttp::start(vec![json_answer(
        400,
        json!({"errors": [{"message": "Does not contain a valid address.", "field": "personalizations.0.to.0.email", "help": "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.personalizations.to"}]}),
    )])
    .await;
    let id = pending_confirmation(&app).await;
    let attempts = run_once(app.pool(), &sendgrid(&fake), &policy(5), Utc::now())
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, Status::Failed);
    let m = app.get(&app.admin, &format!("/messages/{id}")).await.ok();
    assert_eq!(m["status"], "failed");
    assert_eq!(m["attempts"], 1);
    assert!(
        m["last_error"]
            .as_str()
            .unwrap()
            .contains("Does not contain a valid address. (field personalizations.0.to.0.email)"),
        "{m}"
    );
    // Never again.
    assert!(
        run_once(
            app.pool(),
            &sendgrid(&fake),
            &policy(5),
            Utc::now() + chrono::Duration::days(1)
        )
        .await
        .unwrap()
        .is_empty()
    );
}

#[tokio::test]
async fn the_outbox_marks_messages_sent_in_the_database() {
    let app = TestApp::new().await;
    let id = pending_confirmation(&app).await;
    let providers = Providers {
        email: Arc::new(Outbox),
        sms: None,
    };
    let attempts = run_once(app.pool(), &providers, &Policy::default(), Utc::now())
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1);
    let m = app.get(&app.admin, &format!("/messages/{id}")).await.ok();
    assert_eq!(m["status"], "sent");
    assert_eq!(m["provider"], "outbox");
    assert_eq!(m["provider_ref"], format!("outbox-{id}"));
}
