//! Users of the embedded broker: plain passwords compared in constant time, or argon2 hashes.
//! Once one user is configured, a CONNECT without valid credentials is refused.

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
    }

    #[test]
    fn bad_tables_are_explained() {
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
