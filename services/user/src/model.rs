//! What the API receives and sends. Request bodies refuse unknown fields, so a typo in a
//! field name is a 422 rather than a silently ignored value.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Registration and log-in.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[schema(example = "ann@example.com", max_length = 254)]
    pub email: String,
    /// 12 to 128 characters, not the email, not a common password.
    #[schema(example = "violet staple gun", min_length = 12, max_length = 128)]
    pub password: String,
}

/// The answer to a registration, the same whether or not the email already had an
/// account (so that registration cannot be used to find out).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    pub status: String,
    pub detail: String,
}

/// A token pair.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// An Ed25519-signed JWT (`Authorization: Bearer …`).
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Opaque; exchange it at `POST /refresh` for a new pair. Single use.
    pub refresh_token: String,
    /// Seconds until the refresh token expires if unused.
    pub refresh_expires_in: u64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// The caller's account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    pub email_verified: bool,
    #[schema(example = json!(["customer"]))]
    pub roles: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

/// A single-use token from an email (verification).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub token: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPassword {
    pub email: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// The token from the reset email.
    pub token: String,
    pub new_password: String,
}

/// What an address is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AddressKind {
    Shipping,
    Billing,
}

impl AddressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shipping => "shipping",
            Self::Billing => "billing",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "shipping" => Some(Self::Shipping),
            "billing" => Some(Self::Billing),
            _ => None,
        }
    }
}

/// An address as sent to create or replace one.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    pub kind: AddressKind,
    /// The recipient.
    #[schema(example = "Ann Example", max_length = 200)]
    pub name: String,
    #[schema(max_length = 200)]
    pub company: Option<String>,
    #[schema(example = "Invalidenstraße 116", max_length = 200)]
    pub line1: String,
    #[schema(max_length = 200)]
    pub line2: Option<String>,
    #[schema(example = "Berlin", max_length = 100)]
    pub city: String,
    #[schema(max_length = 100)]
    pub region: Option<String>,
    #[schema(example = "10115", max_length = 20)]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    #[schema(example = "DE")]
    pub country: String,
    #[schema(example = "+49 30 1234567", max_length = 32)]
    pub phone: Option<String>,
    /// Makes this the default of its kind (the previous default stops being one).
    #[serde(default)]
    pub is_default: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Address {
    pub id: Uuid,
    pub kind: AddressKind,
    pub name: String,
    pub company: Option<String>,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: Option<String>,
    pub country: String,
    pub phone: Option<String>,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One page of addresses.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddressPage {
    pub items: Vec<Address>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}
