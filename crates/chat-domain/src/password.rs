//! Passwords: the `Password` newtype (never printed) and argon2id hashing run
//! off the async runtime.

use std::fmt;
use std::sync::Arc;

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::model::PasswordHash;
use crate::names::InvalidInput;
use crate::ports::StoreError;

/// A plain password on its way to being hashed or checked. Its `Debug` hides it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Shortest accepted password, in characters.
    pub const MIN_CHARS: usize = 6;

    /// Accepts a new password: 6 to 1,024 characters.
    ///
    /// # Errors
    /// [`InvalidInput`] when too short or too long.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let n = raw.chars().count();
        if n < Self::MIN_CHARS {
            return Err(InvalidInput {
                what: "password",
                why: "must be at least 6 characters",
            });
        }
        if n > 1024 {
            return Err(InvalidInput {
                what: "password",
                why: "is too long",
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// Wraps a password offered at login, without the rules for new passwords
    /// (an old account's password may predate them).
    pub fn offered(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    /// A random 20-character password for the first admin.
    pub fn generate() -> Self {
        use rand::Rng;
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut rng = rand::rngs::OsRng;
        Self(
            (0..20)
                .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
                .collect(),
        )
    }

    /// The plain text; call only to hash it or show a generated one once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Hashes and verifies passwords with argon2id.
#[derive(Clone)]
pub struct PasswordHasher {
    argon: Arc<Argon2<'static>>,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHasher(argon2id)")
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::owasp()
    }
}

impl PasswordHasher {
    /// argon2id with OWASP's parameters: m = 19,456 KiB, t = 2, p = 1.
    pub fn owasp() -> Self {
        Self::with_params(19_456, 2, 1)
    }

    /// argon2id with the given memory (KiB), iterations and lanes.
    ///
    /// # Panics
    /// If the parameters are outside argon2's limits (a programming error).
    pub fn with_params(m_kib: u32, t: u32, p: u32) -> Self {
        #[allow(clippy::expect_used)]
        let params = Params::new(m_kib, t, p, None).expect("valid argon2 parameters");
        Self {
            argon: Arc::new(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)),
        }
    }

    /// Hashes a password on a blocking thread (argon2 takes tens of
    /// milliseconds of CPU and would stall every connection on this worker).
    ///
    /// # Errors
    /// `StoreError::Unexpected` if hashing itself fails.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, StoreError> {
        let argon = Arc::clone(&self.argon);
        let plain = password.0.clone();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            argon
                .hash_password(plain.as_bytes(), &salt)
                .map(|h| PasswordHash::from_phc(h.to_string()))
                .map_err(|e| StoreError::unexpected(e.to_string()))
        })
        .await
        .map_err(StoreError::unexpected)?
    }

    /// Checks a password against a stored hash on a blocking thread. A
    /// malformed hash verifies as false.
    ///
    /// # Errors
    /// `StoreError::Unexpected` if the blocking task dies.
    pub async fn verify(
        &self,
        password: &Password,
        hash: &PasswordHash,
    ) -> Result<bool, StoreError> {
        let argon = Arc::clone(&self.argon);
        let plain = password.0.clone();
        let phc = hash.as_phc().to_owned();
        tokio::task::spawn_blocking(move || {
            argon2::password_hash::PasswordHash::new(&phc)
                .map(|parsed| argon.verify_password(plain.as_bytes(), &parsed).is_ok())
                .unwrap_or(false)
        })
        .await
        .map_err(StoreError::unexpected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_never_contain_the_password() {
        let hasher = PasswordHasher::with_params(1024, 1, 1);
        let pw = Password::parse("correct horse").unwrap();
        let hash = hasher.hash(&pw).await.unwrap();
        assert!(hash.as_phc().starts_with("$argon2id$"));
        assert!(!hash.as_phc().contains("correct"));
        assert!(hasher.verify(&pw, &hash).await.unwrap());
        assert!(
            !hasher
                .verify(&Password::offered("wrong"), &hash)
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(&pw, &PasswordHash::from_phc("junk".into()))
                .await
                .unwrap()
        );
    }

    #[test]
    fn owasp_parameters() {
        let h = PasswordHasher::owasp();
        let p = h.argon.params();
        assert_eq!((p.m_cost(), p.t_cost(), p.p_cost()), (19_456, 2, 1));
    }

    #[test]
    fn short_passwords_are_refused_and_debug_hides_them() {
        assert!(Password::parse("12345").is_err());
        assert_eq!(
            format!("{:?}", Password::parse("secret-pw").unwrap()),
            "Password(..)"
        );
        assert_eq!(Password::generate().expose().len(), 20);
    }
}
