//! Fake providers (HTTP and SMTP) that record what they receive and answer from a
//! script; the test app (router, handler, database, tokens).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use notification::handlers::{Notifications, Shop};
use notification::templates::Templates;
use serde_json::{Value, json};
use shopkit::events::Envelope;
use shopkit::testing::{TestDb, TestIssuer, TestResponse};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The form fields, decoded.
    pub fn form(&self) -> Vec<(String, String)> {
        std::str::from_utf8(&self.body)
            .unwrap()
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                (form_decode(k), form_decode(v))
            })
            .collect()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

/// application/x-www-form-urlencoded decoding: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// A scripted answer: status, headers, body.
pub type Answer = (u16, Vec<(&'static str, String)>, String);

/// An HTTP provider on 127.0.0.1:<free port>: records every request and answers with the
/// next scripted answer (the last one again when the script runs out).
#[derive(Clone)]
pub struct FakeHttp {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
}

impl FakeHttp {
    pub async fn start(script: Vec<Answer>) -> FakeHttp {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (r, s) = (requests.clone(), script.clone());
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (r, s) = (r.clone(), s.clone());
                async move {
                    r.lock().unwrap().push(Recorded {
                        method,
                        path: uri.path().to_owned(),
                        headers,
                        body,
                    });
                    let (status, headers, body) = {
                        let mut s = s.lock().unwrap();
                        if s.len() > 1 {
                            s.pop_front().unwrap()
                        } else {
                            s.front().cloned().unwrap()
                        }
                    };
                    let mut response = Response::new(Body::from(body));
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    for (name, value) in headers {
                        response.headers_mut().insert(name, value.parse().unwrap());
                    }
                    response.into_response()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeHttp {
            url,
            requests,
            script,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn answer_next(&self, answers: Vec<Answer>) {
        *self.script.lock().unwrap() = VecDeque::from(answers);
    }
}

/// JSON answers.
#[allow(clippy::needless_pass_by_value)]
pub fn json_answer(status: u16, body: Value) -> Answer {
    (
        status,
        vec![("content-type", "application/json".to_owned())],
        body.to_string(),
    )
}

/// One SMTP session as the fake recorded it.
#[derive(Debug, Clone, Default)]
pub struct SmtpSession {
    pub ehlo: String,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
    pub quit: bool,
}

/// A tiny SMTP server (RFC 5321: greeting, EHLO, MAIL, RCPT, DATA, QUIT) that records
/// each session; `refuse_rcpt` answers RCPT with 550 (no such mailbox).
pub struct FakeSmtp {
    pub port: u16,
    pub sessions: Arc<Mutex<Vec<SmtpSession>>>,
}

impl FakeSmtp {
    pub async fn start(refuse_rcpt: bool) -> FakeSmtp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let recorded = sessions.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read);
                    let mut session = SmtpSession::default();
                    write
                        .write_all(b"220 fake.test ESMTP ready\r\n")
                        .await
                        .unwrap();
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                            break;
                        }
                        let command = line.trim_end().to_owned();
                        let upper = command.to_uppercase();
                        let reply: &[u8] = if upper.starts_with("EHLO") {
                            session.ehlo = command.clone();
                            b"250-fake.test greets you\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                        } else if upper.starts_with("MAIL FROM:") {
                            session.mail_from = command.clone();
                            b"250 2.1.0 Ok\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            session.rcpt_to.push(command.clone());
                            if refuse_rcpt {
                                b"550 5.1.1 No such user here\r\n"
                            } else {
                                b"250 2.1.5 Ok\r\n"
                            }
                        } else if upper == "DATA" {
                            write
                                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                                .await
                                .unwrap();
                            let mut data = String::new();
                            loop {
                                line.clear();
                                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    break;
                                }
                                if line == ".\r\n" {
                                    break;
                                }
                                data.push_str(&line);
                            }
                            session.data = data;
                            b"250 2.0.0 Ok: queued as FAKE123\r\n"
                        } else if upper == "QUIT" {
                            session.quit = true;
                            write.write_all(b"221 2.0.0 Bye\r\n").await.unwrap();
                            break;
                        } else if upper == "RSET" || upper == "NOOP" {
                            b"250 2.0.0 Ok\r\n"
                        } else {
                            b"502 5.5.2 Command not recognized\r\n"
                        };
                        write.write_all(reply).await.unwrap();
                    }
                    recorded.lock().unwrap().push(session);
                });
            }
        });
        FakeSmtp { port, sessions }
    }
}

pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn shop() -> Shop {
    Shop {
        name: "Example Shop".into(),
        url: "https://shop.example".into(),
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
}

pub struct TestApp {
    pub db: TestDb,
    pub router: Router,
    pub issuer: TestIssuer,
    pub handler: Notifications,
    pub admin: User,
}

impl TestApp {
    pub async fn new() -> TestApp {
        install_tls();
        let db = TestDb::new(&notification::MIGRATOR).await.unwrap();
        let issuer = TestIssuer::new().unwrap();
        let state = notification::AppState::new(db.pool.clone(), issuer.verifier().unwrap());
        let handler = Notifications::new(Arc::new(Templates::builtin().unwrap()), shop(), true);
        let mut app = TestApp {
            router: notification::router(state),
            handler,
            admin: User {
                id: Uuid::nil(),
                token: String::new(),
            },
            issuer,
            db,
        };
        app.admin = app.user(&["admin"]);
        app
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.db.pool
    }

    pub fn user(&self, roles: &[&str]) -> User {
        let claims = self.issuer.claims(roles, Duration::from_secs(600));
        User {
            id: claims.sub,
            token: self.issuer.signer.sign(&claims).unwrap(),
        }
    }

    /// Delivers an event as the consumer does (inbox and handler in one transaction).
    pub async fn deliver(&self, event: &Envelope) -> bool {
        shopkit::events::handle_once(self.pool(), "notification", &self.handler, event)
            .await
            .unwrap()
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        shopkit::testing::send(&self.router, request).await.unwrap()
    }

    pub async fn get(&self, user: &User, uri: &str) -> TestResponse {
        self.send(
            Request::get(uri)
                .header(header::AUTHORIZATION, format!("Bearer {}", user.token))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    pub async fn put_json(&self, user: &User, uri: &str, body: &Value) -> TestResponse {
        self.send(
            Request::put(uri)
                .header(header::AUTHORIZATION, format!("Bearer {}", user.token))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    /// The messages as the admin API lists them.
    pub async fn messages(&self, query: &str) -> Vec<Value> {
        let body = self
            .get(&self.admin, &format!("/messages?{query}"))
            .await
            .ok();
        body["items"].as_array().unwrap().clone()
    }
}

pub fn registered(user_id: Uuid, email: &str) -> Envelope {
    Envelope::new(
        "user",
        "user.registered",
        json!({"user_id": user_id, "email": email, "verification_token": "tok-123",
               "verification_expires_at": "2030-01-01T12:00:00Z"}),
    )
}

pub fn order_created(order_id: Uuid, user_id: Uuid) -> Envelope {
    Envelope::new(
        "order",
        "order.created",
        json!({"order_id": order_id, "user_id": user_id, "cart_id": Uuid::now_v7(),
        "currency": "USD", "total_minor": 3797,
        "lines": [
            {"sku": "MUG-1", "product_name": "Mug", "quantity": 2, "unit_price_minor": 1299},
            {"sku": "TEE-M", "quantity": 1, "unit_price_minor": 1199},
        ]}),
    )
}

pub fn order_paid(order_id: Uuid, user_id: Uuid) -> Envelope {
    Envelope::new(
        "order",
        "order.paid",
        json!({"order_id": order_id, "user_id": user_id, "cart_id": Uuid::now_v7(),
               "currency": "USD", "total_minor": 3797}),
    )
}
