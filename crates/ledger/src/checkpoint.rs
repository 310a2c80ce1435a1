//! Signed checkpoints: a tenant's tree head (origin, size, root) signed with Ed25519, written in
//! the C2SP signed-note / tlog-checkpoint text format so standard tooling can read it:
//!
//! ```text
//! nexus.local/ledger/demo
//! 42
//! <base64 root hash>
//!
//! — nexus-ledger <base64(key id ‖ signature)>
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::hash::{Hash, sha256};

/// The name the ledger signs with.
pub const KEY_NAME: &str = "nexus-ledger";
const SIG_PREFIX: &str = "\u{2014} ";
const ED25519_ALG: u8 = 0x01;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// The origin line of a tenant's log: `<prefix>/ledger/<tenant>`. Including the tenant means
    /// one tenant's checkpoint can never stand for another's.
    pub fn origin_for(prefix: &str, tenant: &domain::TenantId) -> String {
        format!("{prefix}/ledger/{tenant}")
    }

    /// The signed text: three lines, each ending in a newline.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error("checkpoint is for {found:?}, expected {expected:?}")]
    WrongOrigin { found: String, expected: String },
    #[error("checkpoint is signed by another key (key id {found}, expected {expected})")]
    WrongKey { found: String, expected: String },
    #[error("checkpoint carries no signature by {0}")]
    Unsigned(String),
    #[error("checkpoint signature does not verify")]
    BadSignature,
    #[error("malformed verifier key: {0}")]
    BadVerifierKey(String),
}

fn key_id(name: &str, key: &VerifyingKey) -> [u8; 4] {
    let mut data = Vec::with_capacity(name.len() + 34);
    data.extend_from_slice(name.as_bytes());
    data.push(b'\n');
    data.push(ED25519_ALG);
    data.extend_from_slice(key.as_bytes());
    let digest = sha256(&data);
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Signs checkpoints with the ledger's private key.
pub struct CheckpointSigner {
    key: SigningKey,
    verifier: CheckpointVerifier,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner").field("verifier", &self.verifier).finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    pub fn new(key: SigningKey) -> Self {
        let verifier = CheckpointVerifier::new(KEY_NAME, key.verifying_key());
        Self { key, verifier }
    }

    /// The signed note for a checkpoint.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let signature = self.key.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.verifier.key_id);
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n{SIG_PREFIX}{} {}\n", self.verifier.name, B64.encode(blob))
    }

    pub fn verifier(&self) -> &CheckpointVerifier {
        &self.verifier
    }
}

/// Verifies checkpoints against one public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointVerifier {
    name: String,
    key: VerifyingKey,
    key_id: [u8; 4],
}

impl CheckpointVerifier {
    pub fn new(name: &str, key: VerifyingKey) -> Self {
        Self { name: name.to_owned(), key_id: key_id(name, &key), key }
    }

    pub fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Hex of the 4-byte key id.
    pub fn key_id_hex(&self) -> String {
        hex::encode(self.key_id)
    }

    /// The signed-note verifier key: `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
    pub fn to_vkey(&self) -> String {
        let mut blob = vec![ED25519_ALG];
        blob.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, self.key_id_hex(), B64.encode(blob))
    }

    /// Parses a verifier key written by [`Self::to_vkey`].
    pub fn from_vkey(text: &str) -> Result<Self, CheckpointError> {
        let bad = |why: &str| CheckpointError::BadVerifierKey(why.to_owned());
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(blob)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected <name>+<key id>+<key>"));
        };
        let blob = B64.decode(blob).map_err(|_| bad("key is not base64"))?;
        let [alg, key @ ..] = blob.as_slice() else { return Err(bad("key is empty")) };
        if *alg != ED25519_ALG {
            return Err(bad("key is not an Ed25519 key"));
        }
        let key: [u8; 32] = key.try_into().map_err(|_| bad("Ed25519 key must be 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| bad("not a valid Ed25519 point"))?;
        let verifier = Self::new(name, key);
        if verifier.key_id_hex() != id {
            return Err(bad("key id does not match the key"));
        }
        Ok(verifier)
    }

    /// Parses a signed note and checks its signature. Returns the checkpoint it vouches for.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        let malformed = |why: &str| CheckpointError::Malformed(why.to_owned());
        let Some((body, signatures)) = note.split_once("\n\n") else {
            return Err(malformed("no blank line between text and signatures"));
        };
        let body = format!("{body}\n");
        let checkpoint = parse_body(&body)?;

        let mut other_key = None;
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix(SIG_PREFIX) else {
                return Err(malformed("signature line does not start with an em dash"));
            };
            let Some((name, blob)) = rest.split_once(' ') else {
                return Err(malformed("signature line has no key name"));
            };
            let blob = B64.decode(blob).map_err(|_| malformed("signature is not base64"))?;
            if blob.len() != 68 {
                return Err(malformed("Ed25519 signature must be 4 + 64 bytes"));
            }
            if name != self.name {
                continue;
            }
            if blob[..4] != self.key_id {
                other_key = Some(hex::encode(&blob[..4]));
                continue;
            }
            let signature = Signature::from_slice(&blob[4..]).map_err(|_| CheckpointError::BadSignature)?;
            self.key.verify_strict(body.as_bytes(), &signature).map_err(|_| CheckpointError::BadSignature)?;
            return Ok(checkpoint);
        }
        match other_key {
            Some(found) => Err(CheckpointError::WrongKey { found, expected: self.key_id_hex() }),
            None => Err(CheckpointError::Unsigned(self.name.clone())),
        }
    }

    /// As [`Self::verify`], and also checks the origin.
    pub fn verify_for(&self, note: &str, origin: &str) -> Result<Checkpoint, CheckpointError> {
        let checkpoint = self.verify(note)?;
        if checkpoint.origin != origin {
            return Err(CheckpointError::WrongOrigin { found: checkpoint.origin, expected: origin.to_owned() });
        }
        Ok(checkpoint)
    }
}

/// The key ids (hex) of all signatures on a note, without verifying any of them: used to tell
/// "signed by another key" from "not signed" when no key is at hand.
pub fn signer_key_ids(note: &str) -> Vec<String> {
    let Some((_, signatures)) = note.split_once("\n\n") else { return Vec::new() };
    signatures
        .lines()
        .filter_map(|line| line.strip_prefix(SIG_PREFIX)?.split_once(' '))
        .filter_map(|(_, blob)| B64.decode(blob).ok())
        .filter(|blob| blob.len() >= 4)
        .map(|blob| hex::encode(&blob[..4]))
        .collect()
}

fn parse_body(body: &str) -> Result<Checkpoint, CheckpointError> {
    let malformed = |why: &str| CheckpointError::Malformed(why.to_owned());
    let lines: Vec<&str> = body.strip_suffix('\n').unwrap_or(body).split('\n').collect();
    let [origin, size, root] = lines.as_slice() else {
        return Err(malformed("expected three lines: origin, size, root hash"));
    };
    if origin.is_empty() {
        return Err(malformed("empty origin"));
    }
    if size.is_empty() || (size.len() > 1 && size.starts_with('0')) || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("size is not a decimal number"));
    }
    let size: u64 = size.parse().map_err(|_| malformed("size does not fit in 64 bits"))?;
    let root = B64.decode(root).map_err(|_| malformed("root hash is not base64"))?;
    let root: Hash = root.try_into().map_err(|_| malformed("root hash must be 32 bytes"))?;
    Ok(Checkpoint { origin: (*origin).to_owned(), size, root })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> CheckpointSigner {
        CheckpointSigner::new(SigningKey::from_bytes(&[seed; 32]))
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint { origin: "nexus.local/ledger/demo".into(), size: 42, root: [9; 32] }
    }

    #[test]
    fn signed_checkpoints_verify_and_round_trip() {
        let signer = signer(1);
        let note = signer.sign(&checkpoint());
        assert!(note.starts_with("nexus.local/ledger/demo\n42\n"));
        assert_eq!(signer.verifier().verify(&note), Ok(checkpoint()));
        assert_eq!(signer.verifier().verify_for(&note, "nexus.local/ledger/demo"), Ok(checkpoint()));
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_is_rejected() {
        let note = signer(2).sign(&checkpoint());
        assert!(matches!(signer(1).verifier().verify(&note), Err(CheckpointError::WrongKey { .. })));
    }

    #[test]
    fn any_change_to_the_text_breaks_the_signature() {
        let signer = signer(1);
        let note = signer.sign(&checkpoint());
        let forged = note.replacen("\n42\n", "\n43\n", 1);
        assert_eq!(signer.verifier().verify(&forged), Err(CheckpointError::BadSignature));
        let other_tenant = note.replacen("/demo\n", "/acme\n", 1);
        assert_eq!(signer.verifier().verify(&other_tenant), Err(CheckpointError::BadSignature));
        assert!(matches!(
            signer.verifier().verify_for(&note, "nexus.local/ledger/acme"),
            Err(CheckpointError::WrongOrigin { .. })
        ));
    }

    #[test]
    fn malformed_notes_are_rejected_not_panicked_on() {
        let v = signer(1).verifier().clone();
        for text in [
            "",
            "\n\n",
            "origin\n42\n",
            "origin\n042\nAAAA\n\n— nexus-ledger AAAA\n",
            "origin\n-1\nAAAA\n\n— nexus-ledger AAAA\n",
            "origin\n99999999999999999999999\nAAAA\n\n— x y\n",
            "origin\n1\nnot base64!\n\n— nexus-ledger AAAA\n",
            "origin\n1\nAAAA\n\n— nexus-ledger AAAA\n",
            "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nno dash\n",
        ] {
            assert!(v.verify(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn key_ids_are_read_without_a_key() {
        let signer = signer(4);
        assert_eq!(signer_key_ids(&signer.sign(&checkpoint())), vec![signer.verifier().key_id_hex()]);
        assert!(signer_key_ids("no signatures").is_empty());
    }

    #[test]
    fn verifier_keys_round_trip_and_are_checked() {
        let v = signer(3).verifier().clone();
        assert_eq!(CheckpointVerifier::from_vkey(&v.to_vkey()), Ok(v.clone()));
        let tampered = v.to_vkey().replacen('+', "+00", 1);
        assert!(CheckpointVerifier::from_vkey(&tampered).is_err());
        assert!(CheckpointVerifier::from_vkey("garbage").is_err());
    }
}
