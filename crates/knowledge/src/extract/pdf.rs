//! PDF text with `lopdf` (pure Rust, returns errors rather than panicking, bounds how far a
//! content stream may inflate): page by page, so one broken page does not lose the others.
//! The title is the document information's `/Title`.

use lopdf::{Document, Object};

use super::ExtractFailure;

pub(super) fn extract(bytes: &[u8]) -> Result<(String, Option<String>), ExtractFailure> {
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    if !bytes[start..].starts_with(b"%PDF-") {
        return Err(ExtractFailure::NotPdf);
    }
    let document = Document::load_mem(bytes).map_err(|error| match error {
        lopdf::Error::InvalidPassword | lopdf::Error::Decryption(_) => ExtractFailure::EncryptedPdf,
        other => ExtractFailure::BadPdf(describe(&other)),
    })?;
    let pages = document.get_pages();
    if pages.is_empty() {
        return Err(ExtractFailure::BadPdf("it has no pages".into()));
    }
    let mut text = String::new();
    let mut first_error = None;
    for &number in pages.keys() {
        match document.extract_text(&[number]) {
            Ok(page) => {
                if !text.is_empty() {
                    text.push_str("\n\n");
                }
                text.push_str(&page);
            }
            Err(error) => {
                first_error.get_or_insert_with(|| format!("page {number}: {}", describe(&error)));
            }
        }
    }
    if text.trim().is_empty() {
        return Err(match first_error {
            Some(error) => ExtractFailure::BadPdf(error),
            // Pages that draw no text: a scan, or only images.
            None => ExtractFailure::NoText,
        });
    }
    Ok((text, title(&document)))
}

/// The information dictionary's `/Title`, if present and readable.
fn title(document: &Document) -> Option<String> {
    let info = document.trailer.get(b"Info").ok()?;
    let (_, info) = document.dereference(info).ok()?;
    let title = info.as_dict().ok()?.get(b"Title").ok()?;
    let (_, title) = document.dereference(title).ok()?;
    match title {
        Object::String(..) => lopdf::decode_text_string(title).ok(),
        _ => None,
    }
}

/// An error and its causes on one line.
fn describe(error: &lopdf::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
