//! Users of the embedded broker: plain passwords compared in constant time, or argon2 hashes.
//! Once one user is configured, a CONNECT without valid credentials is refused.
//!
//! Client ids: the gateway's own link ids are reserved, and each user owns the ids equal to its
//! name or starting with `<name>-` (the longest matching user name owns an id), so that one user
//! cannot take over another's session (a broker drops the older connection of a duplicate id).
//! rumqttd refuses ids containing `/`, `+`, `#` or `$` by itself, hence `-` as the separator.

use crate::config::MqttUser;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::collections::HashMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

#[derive(Clone)]
enum Secret {
    Plain(String),
    /// A PHC string, parsed again at each check (it borrows).
    Hash(String),
}

/// The user table the broker consults on every CONNECT.
#[derive(Clone)]
pub struct Users {
    users: Arc<HashMap<String, Secret>>,
}

impl Users {
    /// Checks the table: names unique, exactly one of password / password_hash, hashes parse.
    pub fn new(config: &[MqttUser]) -> Result<Users, String> {
        let mut users = HashMap::new();
        for user in config {
            if user.name.is_empty() {
                return Err("mqtt.users: a user needs a name".into());
            }
            let secret = match (&user.password, &user.password_hash) {
                (Some(p), None) => Secret::Plain(p.clone()),
                (None, Some(h)) => {
                    PasswordHash::new(h).map_err(|e| {
                        format!("mqtt.users '{}': password_hash is not an argon2 PHC string ({e}); create one with `lps-bridge hash-password`", user.name)
                    })?;
                    Secret::Hash(h.clone())
                }
                _ => {
                    return Err(format!(
                        "mqtt.users '{}': give exactly one of password or password_hash",
                        user.name
                    ))
                }
            };
            if is_reserved(&user.name) {
                return Err(format!(
                    "mqtt.users: the name '{}' is reserved for the gateway's own broker link; choose another",
                    user.name
                ));
            }
            if users.insert(user.name.clone(), secret).is_some() {
                return Err(format!("mqtt.users: user '{}' is listed twice", user.name));
            }
        }
        Ok(Users {
            users: Arc::new(users),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn check(&self, name: &str, password: &str) -> bool {
        if name == GATEWAY_USER {
            return bool::from(gateway_password().as_bytes().ct_eq(password.as_bytes()));
        }
        match self.users.get(name) {
            Some(Secret::Plain(p)) => bool::from(p.as_bytes().ct_eq(password.as_bytes())),
            Some(Secret::Hash(h)) => PasswordHash::new(h)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false),
            None => false,
        }
    }
}

/// What the gateway's own links to the embedded broker are called: this prefix plus a random
/// part chosen per link, so no client can guess the id of a running link.
pub const LINK_ID_PREFIX: &str = "lps-bridge-link-";

/// Client ids no MQTT client may use: the gateway's links (and the fixed id older versions used).
pub fn is_reserved(client_id: &str) -> bool {
    client_id == "lps-bridge" || client_id.starts_with(LINK_ID_PREFIX)
}

/// The user the gateway's own MQTT clients (the Sparkplug edge node) log in as when the embedded
/// broker has users. Its name is reserved (under [`LINK_ID_PREFIX`]), so no configured user can
/// have it; its password is chosen at random per process and never leaves it.
pub const GATEWAY_USER: &str = "lps-bridge-link-gateway";

pub fn gateway_password() -> &'static str {
    static PASSWORD: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PASSWORD.get_or_init(|| {
        format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        )
    })
}

impl Users {
    /// Which user owns `client_id`: the longest user name `n` with `client_id == n` or
    /// `client_id` starting with `n-`.
    fn owner(&self, client_id: &str) -> Option<&str> {
        self.users
            .keys()
            .filter(|name| {
                client_id == name.as_str()
                    || client_id
                        .strip_prefix(name.as_str())
                        .is_some_and(|rest| rest.starts_with('-'))
            })
            .max_by_key(|name| name.len())
            .map(String::as_str)
    }

    /// Whether `user` may connect as `client_id`; the error says why not and what would do.
    /// An empty id is fine: the broker then assigns a random one.
    pub fn client_id_allowed(&self, user: &str, client_id: &str) -> Result<(), String> {
        // The gateway's own clients use reserved ids (random, like its links).
        if user == GATEWAY_USER && client_id.starts_with(LINK_ID_PREFIX) {
            return Ok(());
        }
        if is_reserved(client_id) {
            return Err(format!(
                "client id '{client_id}' is reserved for the gateway's own link"
            ));
        }
        if client_id.is_empty() {
            return Ok(());
        }
        match self.owner(client_id) {
            Some(owner) if owner == user => Ok(()),
            Some(owner) => Err(format!(
                "client id '{client_id}' belongs to user '{owner}'; user '{user}' may use '{user}' or '{user}-<suffix>'"
            )),
            None => Err(format!(
                "client id '{client_id}' is not bound to user '{user}'; use '{user}' or '{user}-<suffix>'"
            )),
        }
    }
}

/// An argon2id PHC string for `password` (for `lps-bridge hash-password`).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, password: Option<&str>, hash: Option<String>) -> MqttUser {
        MqttUser {
            name: name.into(),
            password: password.map(String::from),
            password_hash: hash,
        }
    }

    #[test]
    fn plain_and_hashed_passwords() {
        let hash = hash_password("s3cret").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        let users = Users::new(&[
            user("plc", Some("pw"), None),
            user("scada", None, Some(hash)),
        ])
        .unwrap();
        assert!(users.check("plc", "pw"));
        assert!(!users.check("plc", "pw2"));
        assert!(users.check("scada", "s3cret"));
        assert!(!users.check("scada", "wrong"));
        assert!(!users.check("nobody", "pw"));
        assert!(users.check(GATEWAY_USER, gateway_password()));
        assert!(!users.check(GATEWAY_USER, "guess"));
        assert!(users
            .client_id_allowed(GATEWAY_USER, "lps-bridge-link-sparkplug-1")
            .is_ok());
        assert!(users.client_id_allowed(GATEWAY_USER, "plc").is_err());
    }

    #[test]
    fn client_ids_are_bound_to_users() {
        let users =
            Users::new(&[user("plc", Some("a"), None), user("plc-2", Some("b"), None)]).unwrap();
        assert!(users.client_id_allowed("plc", "plc").is_ok());
        assert!(users.client_id_allowed("plc", "plc-line1").is_ok());
        assert!(users.client_id_allowed("plc", "").is_ok());
        // plc-2 is its own user: plc may not use its ids, and the reverse neither.
        let err = users.client_id_allowed("plc", "plc-2").unwrap_err();
        assert!(err.contains("belongs to user 'plc-2'"), "{err}");
        assert!(users.client_id_allowed("plc", "plc-2-x").is_err());
        assert!(users.client_id_allowed("plc-2", "plc-2-x").is_ok());
        assert!(users.client_id_allowed("plc-2", "plc").is_err());
        assert!(users.client_id_allowed("plc", "plcx").is_err());
        assert!(users
            .client_id_allowed("plc", "node-red")
            .unwrap_err()
            .contains("use 'plc' or 'plc-<suffix>'"));
        for reserved in ["lps-bridge", "lps-bridge-link-abc"] {
            assert!(users
                .client_id_allowed("plc", reserved)
                .unwrap_err()
                .contains("reserved"));
        }
    }

    #[test]
    fn bad_tables_are_explained() {
        assert!(Users::new(&[user("lps-bridge", Some("x"), None)])
            .err()
            .unwrap()
            .contains("reserved"));
        assert!(Users::new(&[user("a", None, None)])
            .err()
            .unwrap()
            .contains("exactly one"));
        assert!(Users::new(&[user("a", Some("x"), Some("y".into()))])
            .err()
            .unwrap()
            .contains("exactly one"));
        assert!(Users::new(&[user("a", None, Some("nope".into()))])
            .err()
            .unwrap()
            .contains("hash-password"));
        assert!(
            Users::new(&[user("a", Some("x"), None), user("a", Some("y"), None)])
                .err()
                .unwrap()
                .contains("twice")
        );
    }
}
