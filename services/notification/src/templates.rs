//! The messages' texts: tera templates embedded in the binary (`templates/`), each of
//! which the merchant can replace with a file of the same name in
//! `NOTIFICATION_TEMPLATES_DIR` (`<shop>/templates/notifications`).
//!
//! Per kind `k`: `k.subject.txt`, `k.txt` (plain text) and `k.html` (HTML, which may
//! extend `layout.html`), and for kinds sent by SMS too `k.sms.txt`. Tera escapes the
//! values in `.html` templates only; subjects, plain text and SMS are not escaped.
//!
//! Architecture Invariant: every template (built-in or override) is parsed and rendered
//! with a sample at start-up ([`Templates::load`]), so a broken override stops the
//! service with the file's name instead of failing message by message.

use std::path::Path;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

/// What a message is about. Its name is the templates' file-name stem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    EmailVerification,
    PasswordReset,
    RegistrationAttempted,
    PasswordChanged,
    OrderConfirmation,
    PaymentFailed,
    OrderShipped,
    Refund,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::EmailVerification,
        Kind::PasswordReset,
        Kind::RegistrationAttempted,
        Kind::PasswordChanged,
        Kind::OrderConfirmation,
        Kind::PaymentFailed,
        Kind::OrderShipped,
        Kind::Refund,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::EmailVerification => "email_verification",
            Kind::PasswordReset => "password_reset",
            Kind::RegistrationAttempted => "registration_attempted",
            Kind::PasswordChanged => "password_changed",
            Kind::OrderConfirmation => "order_confirmation",
            Kind::PaymentFailed => "payment_failed",
            Kind::OrderShipped => "order_shipped",
            Kind::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Messages about the account's security that a customer cannot opt out of.
    pub fn is_transactional(self) -> bool {
        matches!(
            self,
            Kind::EmailVerification
                | Kind::PasswordReset
                | Kind::RegistrationAttempted
                | Kind::PasswordChanged
        )
    }

    /// Whether there is an SMS version (sent to customers who opted in).
    pub fn has_sms(self) -> bool {
        matches!(self, Kind::OrderConfirmation | Kind::OrderShipped)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

/// The built-in templates, by file name.
pub const BUILTIN: &[(&str, &str)] = builtin!(
    "layout.html",
    "email_verification.subject.txt",
    "email_verification.txt",
    "email_verification.html",
    "password_reset.subject.txt",
    "password_reset.txt",
    "password_reset.html",
    "registration_attempted.subject.txt",
    "registration_attempted.txt",
    "registration_attempted.html",
    "password_changed.subject.txt",
    "password_changed.txt",
    "password_changed.html",
    "order_confirmation.subject.txt",
    "order_confirmation.txt",
    "order_confirmation.html",
    "order_confirmation.sms.txt",
    "payment_failed.subject.txt",
    "payment_failed.txt",
    "payment_failed.html",
    "order_shipped.subject.txt",
    "order_shipped.txt",
    "order_shipped.html",
    "order_shipped.sms.txt",
    "refund.subject.txt",
    "refund.txt",
    "refund.html",
);

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The template set in use.
#[derive(Debug, Clone)]
pub struct Templates {
    tera: tera::Tera,
    /// The names that came from the override directory (for the start-up log).
    overridden: Vec<String>,
}

impl Templates {
    /// The built-in templates only.
    pub fn builtin() -> anyhow::Result<Templates> {
        Templates::load(None)
    }

    /// The built-in templates, with each file of `dir` of a built-in's name in its
    /// place. Other files are refused (a typo would otherwise be silently ignored).
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Templates> {
        let mut sources: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect();
        let mut overridden = Vec::new();
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).with_context(|| {
                format!(
                    "reading the template directory {} (NOTIFICATION_TEMPLATES_DIR)",
                    dir.display()
                )
            })?;
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
                if !entry.file_type()?.is_file() {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || name.eq_ignore_ascii_case("README.md") {
                    continue;
                }
                names.push((name, entry.path()));
            }
            names.sort();
            for (name, path) in names {
                let Some(slot) = sources.iter_mut().find(|(n, _)| *n == name) else {
                    let known: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
                    bail!(
                        "{} does not replace a built-in template; the names are: {}",
                        path.display(),
                        known.join(", ")
                    );
                };
                slot.1 = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                overridden.push(name);
            }
        }
        let mut tera = tera::Tera::default();
        tera.add_raw_templates(sources.iter().map(|(n, t)| (n.as_str(), t.as_str())))
            .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
            .context("parsing the notification templates")?;
        let templates = Templates { tera, overridden };
        templates.check()?;
        Ok(templates)
    }

    /// The names of the merchant's templates in use.
    pub fn overridden(&self) -> &[String] {
        &self.overridden
    }

    /// Renders every template with a sample, naming the one that fails.
    pub fn check(&self) -> anyhow::Result<()> {
        for kind in Kind::ALL {
            let context = sample(kind);
            self.email(kind, &context)?;
            if kind.has_sms() {
                self.sms(kind, &context)?;
            }
        }
        Ok(())
    }

    fn render(&self, name: &str, context: &Value) -> anyhow::Result<String> {
        let context = tera::Context::from_value(context.clone())
            .map_err(|e| anyhow::anyhow!("{}", chain(&e)))?;
        self.tera
            .render(name, &context)
            .map_err(|e| anyhow::anyhow!("rendering {name}: {}", chain(&e)))
    }

    pub fn email(&self, kind: Kind, context: &Value) -> anyhow::Result<Email> {
        let subject = self.render(&format!("{kind}.subject.txt"), context)?;
        Ok(Email {
            // A subject is one line, whatever the template's line breaks.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: self.render(&format!("{kind}.txt"), context)?,
            html: self.render(&format!("{kind}.html"), context)?,
        })
    }

    pub fn sms(&self, kind: Kind, context: &Value) -> anyhow::Result<String> {
        Ok(self
            .render(&format!("{kind}.sms.txt"), context)?
            .trim()
            .to_owned())
    }
}

/// Tera's errors keep the useful part (line, column, what) in their sources.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Minor units as the customer reads them: `12.34 USD`. Currencies without minor units
/// (ISO 4217 exponent 0) and with three decimals are known; the rest have two.
pub fn format_money(minor: i64, currency: &str) -> String {
    let exponent = match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    };
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    if exponent == 0 {
        return format!("{sign}{abs} {currency}");
    }
    let unit = 10u64.pow(exponent);
    format!(
        "{sign}{}.{:0width$} {currency}",
        abs / unit,
        abs % unit,
        width = exponent as usize
    )
}

/// A context with every value a kind's templates may use.
pub fn sample(kind: Kind) -> Value {
    let shop = json!({"name": "Example Shop", "url": "https://shop.example"});
    let user = json!({"email": "customer@example.com"});
    let order = json!({
        "id": "0190c0de-0000-7000-8000-000000000000",
        "number": "0190C0DE",
        "currency": "USD",
        "total_minor": 2598,
        "total": "25.98 USD",
        "link": "https://shop.example/orders/0190c0de-0000-7000-8000-000000000000",
        "lines": [{
            "sku": "MUG-1", "name": "Mug", "quantity": 2,
            "unit_price_minor": 1299, "unit_price": "12.99 USD", "line_total": "25.98 USD"
        }],
    });
    match kind {
        Kind::EmailVerification | Kind::PasswordReset => json!({
            "shop": shop, "user": user, "token": "t0k3n",
            "link": "https://shop.example/account?token=t0k3n",
            "expires_at": "2026-01-01 12:00 UTC",
        }),
        Kind::RegistrationAttempted | Kind::PasswordChanged => json!({
            "shop": shop, "user": user, "via": "change",
            "link": "https://shop.example/account/password/forgot",
        }),
        Kind::OrderConfirmation | Kind::OrderShipped => {
            json!({"shop": shop, "user": user, "order": order})
        }
        Kind::PaymentFailed => {
            json!({"shop": shop, "user": user, "order": order, "reason": "card declined"})
        }
        Kind::Refund => {
            json!({"shop": shop, "user": user, "order": order, "amount": "25.98 USD"})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_renders_and_only_html_is_escaped() {
        let t = Templates::builtin().unwrap();
        let mut context = sample(Kind::OrderConfirmation);
        context["order"]["lines"][0]["name"] = json!("Tom & Jerry <mug>");
        let email = t.email(Kind::OrderConfirmation, &context).unwrap();
        assert_eq!(
            email.subject,
            "Your Example Shop order 0190C0DE is confirmed"
        );
        assert!(
            email.html.contains("Tom &amp; Jerry &lt;mug&gt;"),
            "{}",
            email.html
        );
        assert!(!email.html.contains("<mug>"));
        assert!(
            email
                .text
                .contains("2 × Tom & Jerry <mug> (MUG-1) at 12.99 USD: 25.98 USD"),
            "{}",
            email.text
        );
        assert!(email.text.contains("Total: 25.98 USD"));
        assert!(email.html.starts_with("<!doctype html>"));
        let sms = t.sms(Kind::OrderConfirmation, &context).unwrap();
        assert_eq!(
            sms,
            "Example Shop: order 0190C0DE confirmed, 25.98 USD paid. Thank you!"
        );
    }

    #[test]
    fn a_file_in_the_directory_replaces_the_builtin_of_its_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("order_confirmation.subject.txt"),
            "Merci pour la commande {{ order.number }}",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("layout.html"),
            "<main>{% block content %}{% endblock content %}</main>",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        assert_eq!(
            t.overridden(),
            ["layout.html", "order_confirmation.subject.txt"]
        );
        let email = t
            .email(Kind::OrderConfirmation, &sample(Kind::OrderConfirmation))
            .unwrap();
        assert_eq!(email.subject, "Merci pour la commande 0190C0DE");
        assert!(email.html.starts_with("<main>"), "{}", email.html);
        // The others stay built in.
        let reset = t
            .email(Kind::PasswordReset, &sample(Kind::PasswordReset))
            .unwrap();
        assert!(reset.subject.contains("Reset your"));
    }

    #[test]
    fn broken_or_unknown_overrides_stop_the_start_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("refund.txt"), "{{ amount ").unwrap();
        let err = format!("{:#}", Templates::load(Some(dir.path())).unwrap_err());
        assert!(err.contains("refund.txt"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("refund.txt"), "{{ no_such_value }}").unwrap();
        let err = format!("{:#}", Templates::load(Some(dir.path())).unwrap_err());
        assert!(err.contains("refund.txt"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("order_confirmaton.txt"), "x").unwrap();
        let err = format!("{:#}", Templates::load(Some(dir.path())).unwrap_err());
        assert!(err.contains("does not replace a built-in"), "{err}");
    }

    #[test]
    fn money_is_formatted_with_the_currency_exponent() {
        assert_eq!(format_money(2598, "USD"), "25.98 USD");
        assert_eq!(format_money(5, "EUR"), "0.05 EUR");
        assert_eq!(format_money(1500, "JPY"), "1500 JPY");
        assert_eq!(format_money(1234, "KWD"), "1.234 KWD");
        assert_eq!(format_money(-250, "USD"), "-2.50 USD");
    }
}
