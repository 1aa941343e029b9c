//! The rules every write obeys, whichever way it arrives (a single JSON object, a bulk
//! import row, the demo seed). Each check returns the message for a [`FieldError`]; the
//! caller names the field (and the row).
//!
//! The database repeats the essential ones as CHECK constraints, so that a bug here can
//! never store a negative price or an unsearchable slug.

use std::collections::BTreeMap;

use shopkit::error::FieldError;

/// Longest product or category name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest product description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
/// Longest product slug (categories: [`MAX_CATEGORY_SLUG_CHARS`]).
pub const MAX_PRODUCT_SLUG_CHARS: usize = 200;
pub const MAX_CATEGORY_SLUG_CHARS: usize = 100;
/// Longest SKU; SKUs are `[A-Z0-9-]`.
pub const MAX_SKU_CHARS: usize = 64;
/// One billion in major units: far above any real price, and far enough below `i64::MAX`
/// that order totals summed from it cannot overflow.
pub const MAX_PRICE_MINOR: i64 = 100_000_000_000;
/// Stock levels and single adjustments stay well inside PostgreSQL's `integer`.
pub const MAX_STOCK: i64 = 1_000_000_000;
pub const MAX_ATTRIBUTES: usize = 20;
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 32;
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 64;
pub const MAX_IMAGES: usize = 20;
pub const MAX_IMAGE_URL_CHARS: usize = 2048;
pub const MAX_VARIANTS: usize = 200;
pub const MAX_REASON_CHARS: usize = 200;

pub type Check = Result<(), String>;

/// Collects field errors; `finish` turns them into a 422.
#[derive(Debug, Default)]
pub struct Errors {
    pub list: Vec<FieldError>,
    row: Option<usize>,
}

impl Errors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Errors of one bulk-import row (1-based).
    pub fn for_row(row: usize) -> Self {
        Self {
            list: Vec::new(),
            row: Some(row),
        }
    }

    pub fn check(&mut self, field: impl Into<String>, outcome: Check) {
        if let Err(message) = outcome {
            self.push(field, message);
        }
    }

    pub fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        let error = FieldError::new(field, message);
        self.list.push(match self.row {
            Some(row) => error.at_row(row),
            None => error,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn finish(self) -> Result<(), shopkit::ApiError> {
        if self.list.is_empty() {
            Ok(())
        } else {
            Err(shopkit::ApiError::Validation(self.list))
        }
    }
}

fn has_control(value: &str, allow_newlines: bool) -> bool {
    value
        .chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')))
}

pub fn name(value: &str) -> Check {
    let chars = value.chars().count();
    if value.trim().is_empty() {
        Err("must not be empty".into())
    } else if chars > MAX_NAME_CHARS {
        Err(format!(
            "must be at most {MAX_NAME_CHARS} characters (got {chars})"
        ))
    } else if has_control(value, false) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

pub fn description(value: &str) -> Check {
    let chars = value.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        Err(format!(
            "must be at most {MAX_DESCRIPTION_CHARS} characters (got {chars})"
        ))
    } else if has_control(value, true) {
        Err("must not contain control characters other than newlines and tabs".into())
    } else {
        Ok(())
    }
}

fn slug(value: &str, max: usize) -> Check {
    let well_formed = !value.is_empty()
        && value.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    if !well_formed {
        Err("must be lower-case letters and digits in words joined by single hyphens, like `blue-oxford-shirt`".into())
    } else if value.len() > max {
        Err(format!("must be at most {max} characters"))
    } else {
        Ok(())
    }
}

pub fn product_slug(value: &str) -> Check {
    slug(value, MAX_PRODUCT_SLUG_CHARS)
}

pub fn category_slug(value: &str) -> Check {
    slug(value, MAX_CATEGORY_SLUG_CHARS)
}

/// A slug from a name: ASCII letters and digits kept (lower-cased), every other run of
/// characters becomes one hyphen. Empty when the name has no ASCII letters or digits.
pub fn slugify(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending_hyphen = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if pending_hyphen && !out.is_empty() {
                out.push('-');
            }
            pending_hyphen = false;
            out.push(c.to_ascii_lowercase());
        } else {
            pending_hyphen = true;
        }
    }
    if out.len() > MAX_PRODUCT_SLUG_CHARS {
        out.truncate(MAX_PRODUCT_SLUG_CHARS);
        while out.ends_with('-') {
            out.pop();
        }
    }
    out
}

pub fn sku(value: &str) -> Check {
    let ok = !value.is_empty()
        && value.len() <= MAX_SKU_CHARS
        && value
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be 1 to {MAX_SKU_CHARS} characters of A-Z, 0-9 and `-`"
        ))
    }
}

/// ISO 4217 form: three upper-case letters (`USD`, `EUR`).
pub fn currency(value: &str) -> Check {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err("must be an ISO 4217 code of three upper-case letters, like `USD`".into())
    }
}

pub fn price_minor(value: i64) -> Check {
    if value < 0 {
        Err("must not be negative".into())
    } else if value > MAX_PRICE_MINOR {
        Err(format!("must be at most {MAX_PRICE_MINOR} minor units"))
    } else {
        Ok(())
    }
}

pub fn on_hand(value: i64) -> Check {
    if value < 0 {
        Err("must not be negative".into())
    } else if value > MAX_STOCK {
        Err(format!("must be at most {MAX_STOCK}"))
    } else {
        Ok(())
    }
}

pub fn attribute_key(key: &str) -> Check {
    let mut bytes = key.bytes();
    let ok = key.len() <= MAX_ATTRIBUTE_KEY_CHARS
        && bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "attribute names are 1 to {MAX_ATTRIBUTE_KEY_CHARS} characters of a-z, 0-9 and `_`, starting with a letter"
        ))
    }
}

pub fn attribute_value(value: &str) -> Check {
    let chars = value.chars().count();
    if value.trim().is_empty() {
        Err("attribute values must not be empty".into())
    } else if chars > MAX_ATTRIBUTE_VALUE_CHARS {
        Err(format!(
            "attribute values must be at most {MAX_ATTRIBUTE_VALUE_CHARS} characters"
        ))
    } else if has_control(value, false) {
        Err("attribute values must not contain control characters".into())
    } else {
        Ok(())
    }
}

pub fn attributes(errors: &mut Errors, field: &str, attributes: &BTreeMap<String, String>) {
    if attributes.len() > MAX_ATTRIBUTES {
        errors.push(field, format!("at most {MAX_ATTRIBUTES} attributes"));
    }
    for (key, value) in attributes {
        errors.check(format!("{field}.{key}"), attribute_key(key));
        errors.check(format!("{field}.{key}"), attribute_value(value));
    }
}

/// A path on the shop's own host (`/static/img/x.jpg`) or an absolute http(s) URL.
pub fn image_url(value: &str) -> Check {
    let shaped =
        value.starts_with('/') || value.starts_with("https://") || value.starts_with("http://");
    if !shaped {
        Err("must be a path starting with `/` or an http(s) URL".into())
    } else if value.len() > MAX_IMAGE_URL_CHARS {
        Err(format!("must be at most {MAX_IMAGE_URL_CHARS} characters"))
    } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("must not contain whitespace".into())
    } else {
        Ok(())
    }
}

pub fn image_urls(errors: &mut Errors, field: &str, urls: &[String]) {
    if urls.len() > MAX_IMAGES {
        errors.push(field, format!("at most {MAX_IMAGES} images"));
    }
    for (i, url) in urls.iter().enumerate() {
        errors.check(format!("{field}[{i}]"), image_url(url));
    }
}

pub fn reason(value: &str) -> Check {
    let chars = value.chars().count();
    if value.trim().is_empty() {
        Err("must say why the stock changed".into())
    } else if chars > MAX_REASON_CHARS {
        Err(format!("must be at most {MAX_REASON_CHARS} characters"))
    } else if has_control(value, false) {
        Err("must not contain control characters".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_derived_from_names() {
        assert_eq!(
            slugify("Blue Oxford Cotton Shirt"),
            "blue-oxford-cotton-shirt"
        );
        assert_eq!(slugify("'; DROP TABLE products; --"), "drop-table-products");
        assert_eq!(slugify("  T-Shirt (XL)!  "), "t-shirt-xl");
        assert_eq!(slugify("Ünïcode"), "n-code");
        assert_eq!(slugify("!!!"), "");
        assert!(product_slug(&slugify("Blue Oxford Cotton Shirt")).is_ok());
    }

    #[test]
    fn slugs_must_be_hyphenated_lower_case_words() {
        assert!(product_slug("blue-shirt-2").is_ok());
        for bad in [
            "",
            "Blue",
            "blue--shirt",
            "-blue",
            "blue-",
            "blue shirt",
            "blé",
        ] {
            assert!(product_slug(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn skus_currencies_and_prices() {
        assert!(sku("SHRT-0001-M").is_ok());
        assert!(sku("shrt-1").is_err());
        assert!(sku(&"A".repeat(65)).is_err());
        assert!(sku("").is_err());
        assert!(currency("USD").is_ok());
        for bad in ["usd", "US", "USDX", "U$D"] {
            assert!(currency(bad).is_err(), "{bad}");
        }
        assert!(price_minor(0).is_ok());
        assert!(price_minor(-1).is_err());
        assert!(price_minor(MAX_PRICE_MINOR + 1).is_err());
    }

    #[test]
    fn names_are_bounded_in_characters_not_bytes() {
        assert!(name(&"é".repeat(200)).is_ok());
        assert!(name(&"é".repeat(201)).is_err());
        assert!(name("   ").is_err());
        assert!(name("tab\tname").is_err());
        assert!(description(&"x".repeat(10_000)).is_ok());
        assert!(description(&"x".repeat(10_001)).is_err());
        assert!(description("line one\nline two").is_ok());
    }

    #[test]
    fn attributes_and_images() {
        assert!(attribute_key("color").is_ok());
        assert!(attribute_key("Color").is_err());
        assert!(attribute_key("1size").is_err());
        assert!(attribute_value("navy blue").is_ok());
        assert!(attribute_value("").is_err());
        assert!(image_url("/static/img/x.jpg").is_ok());
        assert!(image_url("https://cdn.example/x.jpg").is_ok());
        assert!(image_url("javascript:alert(1)").is_err());
        assert!(image_url("/a b.jpg").is_err());
    }

    #[test]
    fn errors_carry_their_row() {
        let mut errors = Errors::for_row(3);
        errors.check("sku", sku("bad sku"));
        assert_eq!(errors.list[0].row, Some(3));
        assert!(errors.finish().is_err());
        assert!(Errors::new().finish().is_ok());
    }
}
