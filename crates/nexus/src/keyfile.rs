//! The ledger signing key on disk: PKCS#8 PEM, created on first start with owner-only
//! permissions, refused if others can read it, and never silently replaced.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use anyhow::{Context as _, bail};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use ledger::checkpoint::{CheckpointSigner, CheckpointVerifier, KEY_NAME};

/// Loads the signing key at `path`.
pub fn load(path: &Path) -> anyhow::Result<CheckpointSigner> {
    let shown = path.display();
    let metadata = fs::metadata(path).with_context(|| format!("signing key {shown}"))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!("signing key {shown} is readable by other users (mode {mode:o}); run `chmod 600 {shown}`");
    }
    let pem = fs::read_to_string(path).with_context(|| format!("signing key {shown}"))?;
    let key = SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| anyhow::anyhow!("signing key {shown} is not an Ed25519 PKCS#8 PEM key: {e}"))?;
    Ok(CheckpointSigner::new(key))
}

/// Creates a new signing key at `path` (which must not exist), owner-only.
pub fn create(path: &Path) -> anyhow::Result<CheckpointSigner> {
    let shown = path.display();
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating key directory {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting key directory {}", dir.display()))?;

    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| anyhow::anyhow!("encoding the new signing key: {e}"))?;
    // Write beside the target and rename, so a crash never leaves a half-written key.
    let partial = path.with_extension("pem.partial");
    let _ = fs::remove_file(&partial);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("creating signing key {}", partial.display()))?;
    file.write_all(pem.as_bytes()).with_context(|| format!("writing signing key {shown}"))?;
    file.sync_all().with_context(|| format!("writing signing key {shown}"))?;
    fs::hard_link(&partial, path).with_context(|| format!("creating signing key {shown}"))?;
    fs::remove_file(&partial).with_context(|| format!("removing {}", partial.display()))?;
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(CheckpointSigner::new(key))
}

/// The public key from `--public-key FILE` (PEM or signed-note verifier key), or else derived
/// from the signing key.
pub fn verifier(public_key: Option<&Path>, signing_key: &Path) -> anyhow::Result<CheckpointVerifier> {
    let Some(path) = public_key else {
        if !signing_key.exists() {
            bail!(
                "no public key to verify with: signing key {} does not exist; pass --public-key FILE",
                signing_key.display()
            );
        }
        return Ok(load(signing_key)?.verifier().clone());
    };
    let shown = path.display();
    let text = fs::read_to_string(path).with_context(|| format!("public key {shown}"))?;
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(&text)
            .map_err(|e| anyhow::anyhow!("public key {shown} is not an Ed25519 PEM public key: {e}"))?;
        return Ok(CheckpointVerifier::new(KEY_NAME, key));
    }
    CheckpointVerifier::from_vkey(&text).with_context(|| format!("public key {shown}"))
}

/// The public key as SubjectPublicKeyInfo PEM.
pub fn public_pem(verifier: &CheckpointVerifier) -> anyhow::Result<String> {
    verifier.key().to_public_key_pem(LineEnding::LF).map_err(|e| anyhow::anyhow!("encoding the public key: {e}"))
}

/// The secret that signs API tokens: 32 random bytes in `path` (hex), created owner-only on
/// first use and refused if others can read it.
pub fn token_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    let shown = path.display();
    if path.exists() {
        let mode = fs::metadata(path).with_context(|| format!("token secret {shown}"))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!("token secret {shown} is readable by other users (mode {mode:o}); run `chmod 600 {shown}`");
        }
        let text = fs::read_to_string(path).with_context(|| format!("token secret {shown}"))?;
        let secret = hex::decode(text.trim()).map_err(|e| anyhow::anyhow!("token secret {shown} is not hex: {e}"))?;
        if secret.len() < 32 {
            bail!(
                "token secret {shown} is shorter than 32 bytes; delete it to have a new one made (issued tokens stop working)"
            );
        }
        return Ok(secret);
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut secret = vec![0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating token secret {shown}"))?;
    file.write_all(hex::encode(&secret).as_bytes()).with_context(|| format!("writing token secret {shown}"))?;
    file.sync_all().with_context(|| format!("writing token secret {shown}"))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_key_is_owner_only_and_loads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys").join("ledger.pem");
        let created = create(&path).expect("create");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = load(&path).expect("load");
        assert_eq!(created.verifier(), loaded.verifier());
        assert!(create(&path).is_err(), "an existing key is never overwritten");
    }

    #[test]
    fn an_exposed_or_garbled_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.pem");
        create(&path).expect("create");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(load(&path).expect_err("exposed").to_string().contains("chmod 600"));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::write(&path, "not a key").expect("write");
        assert!(load(&path).expect_err("garbled").to_string().contains("not an Ed25519"));
    }

    #[test]
    fn public_keys_load_from_pem_or_note_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("ledger.pem");
        let signer = create(&key).expect("create");
        let pem = dir.path().join("pub.pem");
        fs::write(&pem, public_pem(signer.verifier()).expect("pem")).expect("write");
        assert_eq!(&verifier(Some(&pem), &key).expect("pem"), signer.verifier());
        let note = dir.path().join("pub.vkey");
        fs::write(&note, signer.verifier().to_vkey()).expect("write");
        assert_eq!(&verifier(Some(&note), &key).expect("note"), signer.verifier());
        assert_eq!(&verifier(None, &key).expect("derived"), signer.verifier());
        assert!(verifier(None, &dir.path().join("absent.pem")).is_err());
    }
}
