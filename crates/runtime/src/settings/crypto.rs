//! Secrets at rest: the master key, the sealed envelope a secret setting is stored as, and the
//! key check value that tells a wrong key from a right one before anything is decrypted.
//!
//! - A secret is sealed with XChaCha20-Poly1305 under the master key with a fresh random
//!   192-bit nonce; the associated data binds it to its scope and setting name, so a sealed
//!   value copied onto another setting does not open. The envelope is
//!   `v1:<key id>:<nonce hex>:<ciphertext hex>`, the key id being the first 16 hex digits of a
//!   hash of the key: a value sealed under another key is named as such, not "corrupt".
//! - The key check value is a fixed text sealed the same way (`kcv1:…`). It is stored in the
//!   database the first time a key is used with it; a later start with another key is refused
//!   before any secret is touched, naming the key id expected.
//! - Digests of secret values (for the ledger) are HMAC-SHA-256 under a key derived from the
//!   master key: equal values are recognisable by whoever holds the key, and a ledger reader
//!   cannot test guesses against them.

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::Mac as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// What the key check value seals.
const CHECK_TEXT: &[u8] = b"nexus master key check";
const CHECK_AAD: &[u8] = b"nexus-key-check";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The master key's text is not 32 bytes in hex (64 digits).
    #[error("the master key must be 64 hexadecimal digits (32 bytes); {0}")]
    BadKey(String),
    /// The database's secrets were sealed under another key.
    #[error(
        "the master key in use (id {in_use}) is not the key this database's secrets were sealed with (id {expected}); \
         start with the original key (NEXUS_MASTER_KEY, NEXUS_MASTER_KEY_FILE or <data_dir>/keys/master.key)"
    )]
    WrongKey { in_use: String, expected: String },
    /// A stored envelope is malformed or fails authentication.
    #[error("{0}")]
    Corrupt(String),
}

/// The machine key every secret setting is sealed under. Its bytes are wiped when dropped and
/// never printed.
#[derive(Clone)]
pub struct MasterKey {
    key: Zeroizing<[u8; 32]>,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let id = hex::encode(&Sha256::new_with_prefix(b"nexus-master-key-id\0").chain_update(bytes).finalize()[..8]);
        Self { key: Zeroizing::new(bytes), id }
    }

    /// A new random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self::from_bytes(bytes)
    }

    /// The key from its text: 64 hex digits, surrounding whitespace ignored.
    pub fn from_hex(text: &str) -> Result<Self, SecretError> {
        let digits = Zeroizing::new(text.trim().to_owned());
        let bytes = Zeroizing::new(
            hex::decode(digits.as_str()).map_err(|_| SecretError::BadKey("it is not hexadecimal".into()))?,
        );
        let array: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| SecretError::BadKey(format!("it is {} bytes long", bytes.len())))?;
        Ok(Self::from_bytes(array))
    }

    /// The key as 64 hex digits (to write the key file).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.key.as_slice()))
    }

    /// A short public name for the key (not secret: a hash of it).
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_slice().into())
    }

    fn seal_with(&self, version: &str, aad: &[u8], plaintext: &[u8]) -> Result<String, SecretError> {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .map_err(|_| SecretError::Corrupt("the value is too long to seal".into()))?;
        Ok(format!("{version}:{}:{}:{}", self.id, hex::encode(nonce), hex::encode(sealed)))
    }

    fn open_with(&self, version: &str, aad: &[u8], envelope: &str) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let corrupt = |why: &str| SecretError::Corrupt(format!("a sealed value is unreadable: {why}"));
        let mut parts = envelope.split(':');
        let (Some(v), Some(id), Some(nonce), Some(sealed), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(corrupt("it is not an envelope"));
        };
        if v != version {
            return Err(corrupt(&format!("unknown envelope version {v:?}")));
        }
        if id != self.id {
            return Err(SecretError::WrongKey { in_use: self.id.clone(), expected: id.to_owned() });
        }
        let nonce = hex::decode(nonce).ok().filter(|n| n.len() == 24).ok_or_else(|| corrupt("bad nonce"))?;
        let sealed = hex::decode(sealed).map_err(|_| corrupt("bad ciphertext"))?;
        self.cipher()
            .decrypt(XNonce::from_slice(&nonce), Payload { msg: &sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| corrupt("it fails authentication (altered, or moved from another setting)"))
    }

    /// Seals a secret setting's value, bound to its scope and name.
    pub fn seal(&self, scope: &str, key: &str, value: &str) -> Result<String, SecretError> {
        self.seal_with("v1", &setting_aad(scope, key), value.as_bytes())
    }

    /// Opens a sealed setting's value.
    pub fn open(&self, scope: &str, key: &str, envelope: &str) -> Result<Zeroizing<String>, SecretError> {
        let bytes = self.open_with("v1", &setting_aad(scope, key), envelope)?;
        String::from_utf8(bytes.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| SecretError::Corrupt(format!("the sealed value of {key} is not text")))
    }

    /// The key check value to store beside the secrets.
    pub fn check_value(&self) -> Result<String, SecretError> {
        self.seal_with("kcv1", CHECK_AAD, CHECK_TEXT)
    }

    /// Whether `stored` (a key check value) was made with this key.
    pub fn verify_check(&self, stored: &str) -> Result<(), SecretError> {
        let opened = self.open_with("kcv1", CHECK_AAD, stored)?;
        if opened.as_slice() == CHECK_TEXT {
            Ok(())
        } else {
            Err(SecretError::Corrupt("the key check value does not hold the check text".into()))
        }
    }

    /// A digest of a secret value that only holders of this key can reproduce.
    pub fn keyed_digest(&self, scope: &str, key: &str, value: &str) -> String {
        let derived = Sha256::new_with_prefix(b"nexus-setting-digest\0").chain_update(self.key.as_slice()).finalize();
        // HMAC accepts keys of any length.
        let Ok(mut mac) = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(&derived) else { return String::new() };
        mac.update(&setting_aad(scope, key));
        mac.update(b"\0");
        mac.update(value.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

fn setting_aad(scope: &str, key: &str) -> Vec<u8> {
    format!("nexus-setting:v1:{scope}:{key}").into_bytes()
}

/// The digest of a non-secret value, for the ledger.
pub fn digest(value: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(value.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_under_its_key_and_name() {
        let key = MasterKey::generate();
        let sealed = key.seal("global", "providers.openai.api_key", "sk-live-123").expect("seal");
        assert!(!sealed.contains("sk-live"));
        assert_eq!(key.open("global", "providers.openai.api_key", &sealed).expect("opens").as_str(), "sk-live-123");
        assert_ne!(
            sealed,
            key.seal("global", "providers.openai.api_key", "sk-live-123").expect("seal"),
            "nonces are fresh"
        );
        assert!(matches!(key.open("global", "providers.mistral.api_key", &sealed), Err(SecretError::Corrupt(_))));
        let other = MasterKey::generate();
        assert!(matches!(other.open("global", "providers.openai.api_key", &sealed), Err(SecretError::WrongKey { .. })));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('0') { '1' } else { '0' });
        assert!(matches!(key.open("global", "providers.openai.api_key", &tampered), Err(SecretError::Corrupt(_))));
    }

    #[test]
    fn the_check_value_tells_the_right_key_from_a_wrong_one() {
        let key = MasterKey::generate();
        let check = key.check_value().expect("check value");
        key.verify_check(&check).expect("the right key");
        let wrong = MasterKey::generate();
        let error = wrong.verify_check(&check).expect_err("a wrong key");
        assert!(error.to_string().contains(key.id()), "{error}");
    }

    #[test]
    fn keys_read_from_hex_and_refuse_anything_else() {
        let key = MasterKey::generate();
        let again = MasterKey::from_hex(&format!("  {}\n", key.to_hex().as_str())).expect("hex");
        assert_eq!(again.id(), key.id());
        assert!(MasterKey::from_hex("abc").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(!format!("{key:?}").contains(key.to_hex().as_str()));
    }

    #[test]
    fn keyed_digests_depend_on_the_key() {
        let (a, b) = (MasterKey::generate(), MasterKey::generate());
        assert_eq!(a.keyed_digest("global", "k", "v"), a.keyed_digest("global", "k", "v"));
        assert_ne!(a.keyed_digest("global", "k", "v"), b.keyed_digest("global", "k", "v"));
        assert_ne!(digest("v"), a.keyed_digest("global", "k", "v"));
    }
}
