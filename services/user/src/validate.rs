//! Input rules: the [`Email`] newtype and the checks of address-book fields. Each check
//! returns the message for a [`FieldError`]; [`Errors`] collects them into one 422, so a
//! client learns every problem of a request at once.

use shopkit::ApiError;
use shopkit::error::FieldError;

/// Longest email address (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest local part (RFC 5321).
pub const MAX_LOCAL_PART_CHARS: usize = 64;
/// Longest domain label (RFC 1035).
pub const MAX_LABEL_CHARS: usize = 63;

/// A syntactically plausible email address, trimmed and in lower case: the form stored,
/// compared and used as the throttling key, so `Ann@Example.com` and `ann@example.com`
/// are one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let value = raw.trim().to_lowercase();
        let chars = value.chars().count();
        if value.is_empty() {
            return Err("must not be empty".into());
        }
        if chars > MAX_EMAIL_CHARS {
            return Err(format!(
                "must be at most {MAX_EMAIL_CHARS} characters (got {chars})"
            ));
        }
        let Some((local, domain)) = value.rsplit_once('@') else {
            return Err("must look like name@example.com".into());
        };
        let local_ok = !local.is_empty()
            && local.chars().count() <= MAX_LOCAL_PART_CHARS
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| {
                !c.is_whitespace()
                    && !c.is_control()
                    && !matches!(
                        c,
                        '@' | '"' | '<' | '>' | '(' | ')' | ',' | ';' | ':' | '\\' | '[' | ']'
                    )
            });
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.chars().count() <= MAX_LABEL_CHARS
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
        if local_ok && domain_ok {
            Ok(Self(value))
        } else {
            Err("must look like name@example.com".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Check = Result<(), String>;

/// Collects field errors; `finish` turns them into a 422.
#[derive(Debug, Default)]
pub struct Errors(Vec<FieldError>);

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn check(&mut self, field: &str, outcome: Check) {
        if let Err(message) = outcome {
            self.push(field, message);
        }
    }

    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// The value if `outcome` is `Ok`, else records the error.
    pub fn take<T>(&mut self, field: &str, outcome: Result<T, String>) -> Option<T> {
        match outcome {
            Ok(value) => Some(value),
            Err(message) => {
                self.push(field, message);
                None
            }
        }
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

/// A required single-line text of at most `max` characters.
pub fn required_text(value: &str, max: usize) -> Check {
    if value.trim().is_empty() {
        return Err("must not be empty".into());
    }
    optional_text(value, max)
}

/// A single-line text of at most `max` characters (empty allowed).
pub fn optional_text(value: &str, max: usize) -> Check {
    let chars = value.chars().count();
    if chars > max {
        Err(format!("must be at most {max} characters (got {chars})"))
    } else if value.chars().any(char::is_control) {
        Err("must not contain control characters or line breaks".into())
    } else {
        Ok(())
    }
}

/// An ISO 3166-1 alpha-2 country code in upper case (`DE`, `US`).
pub fn country(value: &str) -> Check {
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("must be an ISO 3166-1 alpha-2 code in upper case, such as \"DE\" or \"US\"".into())
    }
}

/// Longest phone number as typed.
pub const MAX_PHONE_CHARS: usize = 32;

/// A phone number: digits with the usual separators, an optional leading `+`.
pub fn phone(value: &str) -> Check {
    optional_text(value, MAX_PHONE_CHARS)?;
    let digits = value.chars().filter(char::is_ascii_digit).count();
    let allowed = value.char_indices().all(|(i, c)| {
        c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.') || (c == '+' && i == 0)
    });
    if allowed && (4..=20).contains(&digits) {
        Ok(())
    } else {
        Err("must be a phone number such as \"+49 30 1234567\"".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_lower_cased_and_checked() {
        assert_eq!(
            Email::parse("  Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        assert!(Email::parse("o'neil+shop@mail.example.co.uk").is_ok());
        assert!(Email::parse("jörg@bücher.example").is_ok());
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@example",
            "ann@@example.com",
            "ann smith@example.com",
            "ann@exa mple.com",
            "ann@-example.com",
            "ann@example.123",
            ".ann@example.com",
            "an..n@example.com",
            "ann@example..com",
            "\"ann\"@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(Email::parse(&long_local).is_err());
        let long = format!("{}@{}.com", "a".repeat(60), "b".repeat(200));
        assert!(Email::parse(&long).unwrap_err().contains("at most 254"));
    }

    #[test]
    fn texts_countries_and_phones() {
        assert!(required_text(" ", 10).is_err());
        assert!(required_text("Berlin", 10).is_ok());
        assert!(optional_text("", 10).is_ok());
        assert!(optional_text("line\nbreak", 20).is_err());
        assert!(
            optional_text(&"x".repeat(11), 10)
                .unwrap_err()
                .contains("at most 10")
        );
        assert!(country("DE").is_ok());
        assert!(country("de").is_err());
        assert!(country("DEU").is_err());
        assert!(phone("+49 (30) 123-4567").is_ok());
        assert!(phone("030 1234567").is_ok());
        assert!(phone("12+34567").is_err());
        assert!(phone("call me").is_err());
        assert!(phone("12").is_err());
    }
}
