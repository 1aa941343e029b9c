//! Payment methods as a confirmation carries them: card details (the test gateway), or a
//! token that the provider's own client-side code made (a Stripe PaymentMethod id such
//! as `pm_card_visa`), so that no card data reaches this service. Card details are
//! validated and kept out of logs: the number and CVC are only ever handed to the
//! provider. What is stored and shown is the brand and the last four digits
//! ([`CardSummary`]).

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use shopkit::ApiError;
use shopkit::error::FieldError;
use utoipa::ToSchema;

use crate::model::CardSummary;

/// The body of `POST /payments/{id}/confirm`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    pub payment_method: PaymentMethodInput,
}

/// A payment method as sent: `type: "card"` with the card's fields (the test gateway),
/// or `type: "token"` with the `id` of a payment method the provider tokenised in the
/// browser (Stripe: `pm_…`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethodInput {
    #[serde(rename = "type")]
    #[schema(example = "card")]
    pub kind: String,
    /// 12–19 digits (spaces allowed). With the test gateway one of its test numbers.
    #[serde(default)]
    #[schema(example = "4242424242424242")]
    pub number: String,
    #[serde(default)]
    #[schema(example = 12)]
    pub exp_month: i64,
    #[serde(default)]
    #[schema(example = 2030)]
    pub exp_year: i64,
    #[serde(default)]
    #[schema(example = "123")]
    pub cvc: String,
    /// `type: "token"`: the provider's payment method id, e.g. `pm_card_visa`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

// Never print what a customer typed: requests are logged by accident far too easily.
impl std::fmt::Debug for ConfirmRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmRequest")
            .field("payment_method", &self.payment_method)
            .finish()
    }
}

impl std::fmt::Debug for PaymentMethodInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentMethodInput")
            .field("kind", &self.kind)
            .field("number", &"[redacted]")
            .field("cvc", &"[redacted]")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A validated card. Its `Debug` shows only the brand and last four digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Card {
    number: String,
    pub exp_month: u32,
    pub exp_year: i32,
    cvc: String,
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Card")
            .field("brand", &self.brand())
            .field("last4", &self.last4())
            .finish_non_exhaustive()
    }
}

impl Card {
    /// Checks a payment method against `today` (for the expiry); every problem is
    /// reported at once, as a 422 naming the field.
    pub fn parse(input: &PaymentMethodInput, today: NaiveDate) -> Result<Card, ApiError> {
        let mut errors = Vec::new();
        let mut error = |field: &str, message: &str| {
            errors.push(FieldError::new(
                format!("payment_method.{field}"),
                message.to_owned(),
            ));
        };
        if input.kind != "card" {
            error("type", "must be \"card\" or \"token\"");
        }
        let number: String = input.number.chars().filter(|c| *c != ' ').collect();
        if !(12..=19).contains(&number.len()) || !number.bytes().all(|b| b.is_ascii_digit()) {
            error("number", "must be 12 to 19 digits");
        } else if !luhn_valid(&number) {
            error(
                "number",
                "is not a valid card number (its check digit is wrong)",
            );
        }
        let month = u32::try_from(input.exp_month)
            .ok()
            .filter(|m| (1..=12).contains(m));
        if month.is_none() {
            error("exp_month", "must be 1 to 12");
        }
        let year = i32::try_from(input.exp_year)
            .ok()
            .filter(|y| (2000..=2100).contains(y));
        if year.is_none() {
            error("exp_year", "must be a four-digit year");
        }
        if let (Some(month), Some(year)) = (month, year)
            && (year, month) < (today.year(), today.month())
        {
            error("exp_year", "the card has expired");
        }
        if !(3..=4).contains(&input.cvc.len()) || !input.cvc.bytes().all(|b| b.is_ascii_digit()) {
            error("cvc", "must be 3 or 4 digits");
        }
        match (month, year) {
            (Some(exp_month), Some(exp_year)) if errors.is_empty() => Ok(Card {
                number,
                exp_month,
                exp_year,
                cvc: input.cvc.clone(),
            }),
            _ => Err(ApiError::Validation(errors)),
        }
    }

    /// The full number, for the provider call only.
    pub fn number(&self) -> &str {
        &self.number
    }

    /// The CVC, for the provider call only.
    pub fn cvc(&self) -> &str {
        &self.cvc
    }

    pub fn last4(&self) -> &str {
        &self.number[self.number.len().saturating_sub(4)..]
    }

    /// The card network, from the number's prefix (IIN ranges).
    pub fn brand(&self) -> &'static str {
        let prefix = |n: usize| -> u32 {
            self.number
                .get(..n)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0)
        };
        match (prefix(1), prefix(2), prefix(4)) {
            (4, _, _) => "visa",
            (_, 51..=55, _) | (_, _, 2221..=2720) => "mastercard",
            (_, 34 | 37, _) => "amex",
            (_, 65, _) | (_, _, 6011) => "discover",
            _ => "unknown",
        }
    }

    pub fn summary(&self) -> CardSummary {
        CardSummary {
            brand: self.brand().to_owned(),
            last4: self.last4().to_owned(),
        }
    }
}

/// A validated payment method: card details, or a provider's token for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentMethod {
    Card(Card),
    /// The provider's id of a payment method it holds (Stripe `pm_…`): no card data.
    Token(String),
}

/// The longest token id taken (Stripe's ids are far shorter).
const MAX_TOKEN_LEN: usize = 255;

impl PaymentMethod {
    /// Checks a payment method; every problem is a 422 naming the field.
    pub fn parse(input: &PaymentMethodInput, today: NaiveDate) -> Result<PaymentMethod, ApiError> {
        if input.kind != "token" {
            return Card::parse(input, today).map(PaymentMethod::Card);
        }
        let mut errors = Vec::new();
        let id = input.id.as_deref().unwrap_or_default();
        if id.is_empty()
            || id.len() > MAX_TOKEN_LEN
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            errors.push(FieldError::new(
                "payment_method.id",
                "must be the provider's payment method id, e.g. pm_card_visa",
            ));
        }
        if !input.number.is_empty() || !input.cvc.is_empty() || input.exp_month != 0 {
            errors.push(FieldError::new(
                "payment_method.number",
                "a token carries no card details; send only type and id",
            ));
        }
        if errors.is_empty() {
            Ok(PaymentMethod::Token(id.to_owned()))
        } else {
            Err(ApiError::Validation(errors))
        }
    }

    /// What is kept of it: a card's brand and last four digits; nothing of a token.
    pub fn summary(&self) -> Option<CardSummary> {
        match self {
            PaymentMethod::Card(card) => Some(card.summary()),
            PaymentMethod::Token(_) => None,
        }
    }
}

/// The Luhn check digit test every card number passes.
fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(number: &str, month: i64, year: i64, cvc: &str) -> PaymentMethodInput {
        PaymentMethodInput {
            kind: "card".into(),
            number: number.into(),
            exp_month: month,
            exp_year: year,
            cvc: cvc.into(),
            id: None,
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 5, 17).unwrap()
    }

    fn fields(err: ApiError) -> Vec<String> {
        match err {
            ApiError::Validation(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn the_test_numbers_are_valid_cards() {
        for number in [
            "4242424242424242",
            "4000000000000002",
            "4000000000009995",
            "4000002760003184",
            "5555555555554444",
        ] {
            let card = Card::parse(&input(number, 12, 2030, "123"), today()).unwrap();
            assert_eq!(card.last4(), &number[12..]);
        }
        let card = Card::parse(&input("4242 4242 4242 4242", 5, 2026, "1234"), today()).unwrap();
        assert_eq!(card.number(), "4242424242424242");
        assert_eq!(card.brand(), "visa");
    }

    #[test]
    fn every_bad_field_is_named() {
        let err = Card::parse(&input("4242424242424241", 13, 26, "12a"), today()).unwrap_err();
        assert_eq!(
            fields(err),
            [
                "payment_method.number",
                "payment_method.exp_month",
                "payment_method.exp_year",
                "payment_method.cvc"
            ]
        );
        let mut other = input("4242424242424242", 1, 2030, "123");
        other.kind = "sepa_debit".into();
        assert_eq!(
            fields(Card::parse(&other, today()).unwrap_err()),
            ["payment_method.type"]
        );
        assert_eq!(
            fields(Card::parse(&input("4242-4242", 1, 2030, "123"), today()).unwrap_err()),
            ["payment_method.number"]
        );
    }

    #[test]
    fn a_card_expires_after_its_month() {
        assert!(Card::parse(&input("4242424242424242", 5, 2026, "123"), today()).is_ok());
        let err = Card::parse(&input("4242424242424242", 4, 2026, "123"), today()).unwrap_err();
        assert_eq!(fields(err), ["payment_method.exp_year"]);
    }

    #[test]
    fn brands_come_from_the_prefix() {
        let brand = |n: &str| {
            Card::parse(&input(n, 1, 2030, "123"), today())
                .unwrap()
                .brand()
        };
        assert_eq!(brand("5555555555554444"), "mastercard");
        assert_eq!(brand("2223003122003222"), "mastercard");
        assert_eq!(brand("378282246310005"), "amex");
        assert_eq!(brand("6011111111111117"), "discover");
        assert_eq!(brand("3056930009020004"), "unknown");
    }

    #[test]
    fn a_token_carries_an_id_and_no_card() {
        let token = |id: Option<&str>, number: &str| PaymentMethodInput {
            kind: "token".into(),
            number: number.into(),
            exp_month: 0,
            exp_year: 0,
            cvc: String::new(),
            id: id.map(str::to_owned),
        };
        let method = PaymentMethod::parse(&token(Some("pm_card_visa"), ""), today()).unwrap();
        assert_eq!(method, PaymentMethod::Token("pm_card_visa".into()));
        assert_eq!(method.summary(), None);
        assert_eq!(
            fields(PaymentMethod::parse(&token(None, ""), today()).unwrap_err()),
            ["payment_method.id"]
        );
        assert_eq!(
            fields(
                PaymentMethod::parse(&token(Some("pm 1"), "4242424242424242"), today())
                    .unwrap_err()
            ),
            ["payment_method.id", "payment_method.number"]
        );
        let body: ConfirmRequest = serde_json::from_value(
            serde_json::json!({"payment_method": {"type": "token", "id": "pm_x"}}),
        )
        .unwrap();
        assert!(matches!(
            PaymentMethod::parse(&body.payment_method, today()),
            Ok(PaymentMethod::Token(_))
        ));
        // A card's request serialises as before (its idempotency fingerprint is unchanged).
        let card = input("4242424242424242", 1, 2030, "123");
        assert!(!serde_json::to_string(&card).unwrap().contains("\"id\""));
    }

    #[test]
    fn debug_output_never_shows_the_number_or_cvc() {
        let raw = input("4000002760003184", 1, 2030, "987");
        let card = Card::parse(&raw, today()).unwrap();
        let request = ConfirmRequest {
            payment_method: raw,
        };
        for text in [format!("{card:?}"), format!("{request:?}")] {
            assert!(!text.contains("4000002760003184"), "{text}");
            assert!(!text.contains("400000276"), "{text}");
            assert!(!text.contains("987"), "{text}");
        }
        assert!(format!("{card:?}").contains("3184"));
    }
}
