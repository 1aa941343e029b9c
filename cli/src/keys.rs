//! `shopctl keys rotate`: a new token signing key for the user service. The old key's
//! public half moves into `secrets/jwt_previous_keys` with its retirement time, so the
//! user service keeps publishing it (and tokens it signed keep verifying) until they have
//! expired. The next `shopctl up` rolls the user service onto the new key.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use shopkit::auth::keys::Signer;

/// Retired keys are dropped from `jwt_previous_keys` this long after retirement: far
/// beyond any access token's lifetime (minutes), so no live token needs them.
const KEEP_RETIRED: Duration = Duration::days(7);

#[derive(Debug, Serialize)]
pub struct Rotation {
    pub retired_kid: String,
    pub new_kid: String,
    /// Retired keys still published after this rotation (the one just retired included).
    pub previous_keys: usize,
}

pub fn rotate(shop_dir: &Path, now: DateTime<Utc>) -> anyhow::Result<Rotation> {
    let secrets = shop_dir.join("secrets");
    let read = |name: &str| {
        std::fs::read_to_string(secrets.join(name)).with_context(|| {
            format!(
                "reading secrets/{name} of {} (is it a shop? `shopctl init` makes one)",
                shop_dir.display()
            )
        })
    };
    let old_kid = read("jwt_key_id")?.trim().to_owned();
    let old = Signer::from_pem(&old_kid, &read("jwt_signing_key.pem")?)
        .context("secrets/jwt_signing_key.pem")?;
    let previous_text = match std::fs::read_to_string(secrets.join("jwt_previous_keys")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => r#"{"keys": []}"#.into(),
        Err(e) => return Err(e).context("reading secrets/jwt_previous_keys"),
    };
    let previous = retired_keys(&previous_text, &old, now)?;

    let new_kid = format!("shop-{}", hex::encode(rand::random::<[u8; 8]>()));
    let pem = shopkit::auth::keys::generate_pem()?;
    Signer::from_pem(&new_kid, &pem)?;
    // The retired key is published before the new one signs anything.
    crate::init::write_secret(
        &secrets,
        "jwt_previous_keys",
        &serde_json::to_string_pretty(&json!({ "keys": previous }))?,
    )?;
    crate::init::write_secret(&secrets, "jwt_signing_key.pem", &pem)?;
    crate::init::write_secret(&secrets, "jwt_key_id", &new_kid)?;
    Ok(Rotation {
        retired_kid: old_kid,
        new_kid,
        previous_keys: previous.len(),
    })
}

/// The retired keys after retiring `old` at `now`: those retired within
/// [`KEEP_RETIRED`], then `old` with its `retired_at`.
fn retired_keys(text: &str, old: &Signer, now: DateTime<Utc>) -> anyhow::Result<Vec<Value>> {
    let doc: Value = serde_json::from_str(text)
        .context("secrets/jwt_previous_keys is not JSON (expected {\"keys\": [...]})")?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .or_else(|| doc.as_array())
        .context("secrets/jwt_previous_keys has no \"keys\" array")?;
    let mut kept: Vec<Value> = keys
        .iter()
        .filter(|k| k.get("kid").and_then(Value::as_str) != Some(old.kid()))
        .filter(|k| {
            k.get("retired_at")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_none_or(|at| now - at.with_timezone(&Utc) < KEEP_RETIRED)
        })
        .cloned()
        .collect();
    let mut jwk = old.jwk();
    jwk["retired_at"] = json!(now.to_rfc3339());
    kept.push(jwk);
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_keys_are_kept_for_a_week_then_dropped() {
        let now = Utc::now();
        let old = Signer::generate("k-now").unwrap();
        let recent =
            json!({ "kid": "k-recent", "retired_at": (now - Duration::days(1)).to_rfc3339() });
        let stale =
            json!({ "kid": "k-stale", "retired_at": (now - Duration::days(8)).to_rfc3339() });
        let text = json!({ "keys": [recent, stale] }).to_string();
        let kept = retired_keys(&text, &old, now).unwrap();
        let kids: Vec<&str> = kept.iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert_eq!(kids, ["k-recent", "k-now"]);
        assert_eq!(kept[1]["x"], old.jwk()["x"]);
        assert!(kept[1]["retired_at"].is_string());
    }

    #[test]
    fn rotation_retires_the_current_key_and_writes_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        std::fs::create_dir_all(&secrets).unwrap();
        let pem = shopkit::auth::keys::generate_pem().unwrap();
        std::fs::write(secrets.join("jwt_signing_key.pem"), &pem).unwrap();
        std::fs::write(secrets.join("jwt_key_id"), "shop-old").unwrap();
        let rotation = rotate(dir.path(), Utc::now()).unwrap();
        assert_eq!(rotation.retired_kid, "shop-old");
        let new_kid = std::fs::read_to_string(secrets.join("jwt_key_id")).unwrap();
        assert_eq!(new_kid, rotation.new_kid);
        assert_ne!(new_kid, "shop-old");
        let new_pem = std::fs::read_to_string(secrets.join("jwt_signing_key.pem")).unwrap();
        assert_ne!(new_pem, pem);
        let previous: Value = serde_json::from_str(
            &std::fs::read_to_string(secrets.join("jwt_previous_keys")).unwrap(),
        )
        .unwrap();
        let old_public = Signer::from_pem("shop-old", &pem).unwrap().jwk();
        assert_eq!(previous["keys"][0]["kid"], "shop-old");
        assert_eq!(previous["keys"][0]["x"], old_public["x"]);
        assert!(previous["keys"][0].get("d").is_none(), "no private part");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(secrets.join("jwt_signing_key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_missing_shop_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = rotate(dir.path(), Utc::now()).unwrap_err();
        assert!(format!("{err:#}").contains("shopctl init"), "{err:#}");
    }
}
