//! The built-in test gateway: deterministic, local, no money. A card's outcome is a
//! function of its number (Stripe's test numbers), and every id is derived from the
//! payment's id, so the gateway keeps no state and any replica (or a restarted one)
//! answers a repeated call exactly as the first.
//!
//! | number | outcome |
//! | --- | --- |
//! | `4242424242424242` | authorised (then captured) |
//! | `4000000000000002` | declined: `card_declined` |
//! | `4000000000009995` | declined: `insufficient_funds` |
//! | `4000002760003184` | `requires_action`: 3-D Secure, completed with `approve` or `deny` |
//!
//! Because it keeps no state, [`Provider::retrieve`] cannot know how an interrupted
//! confirmation ended and answers `requires_payment_method`: for this gateway an
//! interrupted confirmation simply did not happen (no money exists), and the customer
//! confirms again. A real provider answers the intent's actual state.
//!
//! Refused when the shop runs in production mode (it is not [`Provider::is_live`]).

use uuid::Uuid;

use super::{
    ActionOutcome, NewIntent, NextAction, Provider, ProviderError, ProviderIntent, ProviderRefund,
    ProviderStatus, RefundRequest,
};
use crate::card::{Card, PaymentMethod};

pub const NAME: &str = "test";

pub const CARD_SUCCEEDS: &str = "4242424242424242";
pub const CARD_DECLINED: &str = "4000000000000002";
pub const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
pub const CARD_REQUIRES_ACTION: &str = "4000002760003184";

const INTENT_PREFIX: &str = "tg_pi_";
const CHARGE_PREFIX: &str = "tg_ch_";
const REFUND_PREFIX: &str = "tg_re_";

/// What the test gateway does with a card number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Succeeds,
    Declined(&'static str),
    RequiresAction,
}

fn behaviour(number: &str) -> Option<Behaviour> {
    match number {
        CARD_SUCCEEDS => Some(Behaviour::Succeeds),
        CARD_DECLINED => Some(Behaviour::Declined("card_declined")),
        CARD_INSUFFICIENT_FUNDS => Some(Behaviour::Declined("insufficient_funds")),
        CARD_REQUIRES_ACTION => Some(Behaviour::RequiresAction),
        _ => None,
    }
}

/// The built-in test gateway (`PAYMENT_PROVIDER=test`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TestGateway;

impl TestGateway {
    fn intent(provider_ref: &str, status: ProviderStatus) -> ProviderIntent {
        ProviderIntent::new(provider_ref, status)
    }

    /// The card of a payment method; a token is not one of ours.
    fn card(method: &PaymentMethod) -> Result<&Card, ProviderError> {
        match method {
            PaymentMethod::Card(card) => Ok(card),
            PaymentMethod::Token(_) => Err(ProviderError::InvalidPaymentMethod(
                "the test gateway takes its test card numbers (type \"card\"), not provider \
                 tokens"
                    .into(),
            )),
        }
    }

    /// The payment id part of one of our intent ids.
    fn suffix(provider_ref: &str) -> Result<&str, ProviderError> {
        provider_ref
            .strip_prefix(INTENT_PREFIX)
            .filter(|s| Uuid::try_parse(s).is_ok())
            .ok_or_else(|| {
                ProviderError::Rejected(format!(
                    "{provider_ref:?} is not an intent of the test gateway"
                ))
            })
    }
}

#[async_trait::async_trait]
impl Provider for TestGateway {
    fn name(&self) -> &'static str {
        NAME
    }

    fn is_live(&self) -> bool {
        false
    }

    fn check_method(&self, method: &PaymentMethod) -> Result<(), ProviderError> {
        let card = Self::card(method)?;
        match behaviour(card.number()) {
            Some(_) => Ok(()),
            None => Err(ProviderError::InvalidPaymentMethod(format!(
                "the test gateway only accepts its test card numbers: {CARD_SUCCEEDS} \
                 (succeeds), {CARD_DECLINED} (declined: card_declined), \
                 {CARD_INSUFFICIENT_FUNDS} (declined: insufficient_funds), \
                 {CARD_REQUIRES_ACTION} (requires 3-D Secure authentication)"
            ))),
        }
    }

    async fn create_intent(
        &self,
        intent: &NewIntent<'_>,
        _idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        if intent.amount_minor <= 0 {
            return Err(ProviderError::Rejected(
                "the amount must be positive".into(),
            ));
        }
        let provider_ref = format!("{INTENT_PREFIX}{}", intent.payment_id.simple());
        Ok(Self::intent(
            &provider_ref,
            ProviderStatus::RequiresPaymentMethod,
        ))
    }

    async fn confirm(
        &self,
        provider_ref: &str,
        method: &PaymentMethod,
        _idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        Self::suffix(provider_ref)?;
        self.check_method(method)?;
        let card = Self::card(method)?;
        let status = match behaviour(card.number()) {
            Some(Behaviour::Succeeds) => ProviderStatus::RequiresCapture,
            Some(Behaviour::Declined(reason)) => ProviderStatus::Failed {
                reason: reason.to_owned(),
            },
            Some(Behaviour::RequiresAction) | None => ProviderStatus::RequiresAction(NextAction {
                kind: "three_d_secure".into(),
                redirect_url: None,
            }),
        };
        Ok(Self::intent(provider_ref, status))
    }

    async fn complete_action(
        &self,
        provider_ref: &str,
        outcome: ActionOutcome,
        _idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        Self::suffix(provider_ref)?;
        let status = match outcome {
            ActionOutcome::Approve => ProviderStatus::RequiresCapture,
            ActionOutcome::Deny => ProviderStatus::Failed {
                reason: "authentication_failed".into(),
            },
        };
        Ok(Self::intent(provider_ref, status))
    }

    async fn capture(
        &self,
        provider_ref: &str,
        amount_minor: i64,
        _idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        let suffix = Self::suffix(provider_ref)?;
        if amount_minor <= 0 {
            return Err(ProviderError::Rejected(
                "the amount must be positive".into(),
            ));
        }
        Ok(Self::intent(
            provider_ref,
            ProviderStatus::Succeeded {
                charge_ref: format!("{CHARGE_PREFIX}{suffix}"),
            },
        ))
    }

    async fn refund(
        &self,
        refund: &RefundRequest<'_>,
        _idempotency_key: &str,
    ) -> Result<ProviderRefund, ProviderError> {
        let (charge_ref, amount_minor) = (refund.charge_ref, refund.amount_minor);
        let suffix = charge_ref.strip_prefix(CHARGE_PREFIX).ok_or_else(|| {
            ProviderError::Rejected(format!(
                "{charge_ref:?} is not a charge of the test gateway"
            ))
        })?;
        if amount_minor <= 0 {
            return Err(ProviderError::Rejected(
                "the amount must be positive".into(),
            ));
        }
        Ok(ProviderRefund {
            refund_ref: format!("{REFUND_PREFIX}{suffix}"),
        })
    }

    async fn cancel(
        &self,
        provider_ref: &str,
        _idempotency_key: &str,
    ) -> Result<ProviderIntent, ProviderError> {
        Self::suffix(provider_ref)?;
        Ok(Self::intent(provider_ref, ProviderStatus::Cancelled))
    }

    async fn retrieve(&self, provider_ref: &str) -> Result<ProviderIntent, ProviderError> {
        Self::suffix(provider_ref)?;
        Ok(Self::intent(
            provider_ref,
            ProviderStatus::RequiresPaymentMethod,
        ))
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::card::PaymentMethodInput;

    fn card(number: &str) -> PaymentMethod {
        let input = PaymentMethodInput {
            kind: "card".into(),
            number: number.into(),
            exp_month: 12,
            exp_year: 2030,
            cvc: "123".into(),
            id: None,
        };
        PaymentMethod::parse(&input, NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()).unwrap()
    }

    fn refund(charge_ref: &str) -> RefundRequest<'_> {
        RefundRequest {
            provider_ref: "tg_pi_x",
            charge_ref,
            amount_minor: 500,
            currency: "EUR",
        }
    }

    async fn intent(gateway: &TestGateway) -> ProviderIntent {
        let payment_id = Uuid::now_v7();
        let new = NewIntent {
            payment_id,
            order_id: Uuid::now_v7(),
            amount_minor: 1999,
            currency: "USD",
        };
        gateway.create_intent(&new, "k").await.unwrap()
    }

    #[tokio::test]
    async fn each_test_number_has_its_outcome() {
        let gateway = TestGateway;
        let created = intent(&gateway).await;
        assert_eq!(created.status, ProviderStatus::RequiresPaymentMethod);
        let r = &created.provider_ref;
        let status = |n| async move { gateway.confirm(r, &card(n), "k").await.unwrap().status };
        assert_eq!(status(CARD_SUCCEEDS).await, ProviderStatus::RequiresCapture);
        assert_eq!(
            status(CARD_DECLINED).await,
            ProviderStatus::Failed {
                reason: "card_declined".into()
            }
        );
        assert_eq!(
            status(CARD_INSUFFICIENT_FUNDS).await,
            ProviderStatus::Failed {
                reason: "insufficient_funds".into()
            }
        );
        assert!(matches!(
            status(CARD_REQUIRES_ACTION).await,
            ProviderStatus::RequiresAction(_)
        ));
    }

    #[tokio::test]
    async fn an_unknown_number_names_the_test_numbers() {
        let gateway = TestGateway;
        let err = gateway.check_method(&card("5555555555554444")).unwrap_err();
        let ProviderError::InvalidPaymentMethod(message) = err else {
            panic!("{err:?}");
        };
        for number in [
            CARD_SUCCEEDS,
            CARD_DECLINED,
            CARD_INSUFFICIENT_FUNDS,
            CARD_REQUIRES_ACTION,
        ] {
            assert!(message.contains(number), "{message}");
        }
        let created = intent(&gateway).await;
        assert!(
            gateway
                .confirm(&created.provider_ref, &card("5555555555554444"), "k")
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn ids_are_derived_so_repeats_answer_alike() {
        let gateway = TestGateway;
        let new = NewIntent {
            payment_id: Uuid::now_v7(),
            order_id: Uuid::now_v7(),
            amount_minor: 500,
            currency: "EUR",
        };
        let a = gateway.create_intent(&new, "k1").await.unwrap();
        let b = gateway.create_intent(&new, "k1").await.unwrap();
        assert_eq!(a, b);
        let captured = gateway.capture(&a.provider_ref, 500, "c").await.unwrap();
        let ProviderStatus::Succeeded { charge_ref } = captured.status else {
            panic!("{captured:?}");
        };
        let refunded = gateway.refund(&refund(&charge_ref), "r").await.unwrap();
        assert_eq!(
            refunded,
            gateway.refund(&refund(&charge_ref), "r").await.unwrap()
        );
        assert!(refunded.refund_ref.starts_with(REFUND_PREFIX));
        assert!(gateway.capture("pi_stripe", 500, "c").await.is_err());
        assert!(gateway.refund(&refund("ch_other"), "r").await.is_err());
        assert!(matches!(
            gateway.check_method(&PaymentMethod::Token("pm_card_visa".into())),
            Err(ProviderError::InvalidPaymentMethod(_))
        ));
    }

    #[tokio::test]
    async fn authentication_approves_or_fails() {
        let gateway = TestGateway;
        let created = intent(&gateway).await;
        let approve = gateway
            .complete_action(&created.provider_ref, ActionOutcome::Approve, "a")
            .await
            .unwrap();
        assert_eq!(approve.status, ProviderStatus::RequiresCapture);
        let deny = gateway
            .complete_action(&created.provider_ref, ActionOutcome::Deny, "a")
            .await
            .unwrap();
        assert_eq!(
            deny.status,
            ProviderStatus::Failed {
                reason: "authentication_failed".into()
            }
        );
        assert!(!gateway.is_live());
    }
}
