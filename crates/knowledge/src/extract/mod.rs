//! Turning an uploaded file into plain text: the format is chosen by content type, then file
//! extension, then by sniffing the bytes (`%PDF-`, `<html`); text must be UTF-8 and not
//! binary, Markdown and HTML lose their markup, PDF text comes out of its content streams.
//! Every failure names the file and the reason; nothing here panics on hostile input.

mod html;
mod markdown;
mod pdf;

/// The formats the knowledge base reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Text,
    Markdown,
    Html,
    Pdf,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
            Format::Pdf => "pdf",
        }
    }
}

/// The readable text of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub text: String,
    pub format: Format,
    /// The document's own title when it has one (HTML `<title>`, the first Markdown heading,
    /// PDF `/Title`).
    pub title: Option<String>,
}

/// Why a file could not be read, and which file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct ExtractError {
    pub file: String,
    pub reason: ExtractFailure,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractFailure {
    #[error("the file is empty")]
    Empty,
    #[error("the file has no readable text")]
    NoText,
    #[error("not UTF-8 text (invalid byte at offset {offset})")]
    NotUtf8 { offset: usize },
    #[error("binary content, not text ({reason})")]
    Binary { reason: String },
    #[error("not a PDF: it does not start with %PDF-")]
    NotPdf,
    #[error("unreadable PDF: {0}")]
    BadPdf(String),
    #[error("encrypted PDF: its text cannot be read without the password")]
    EncryptedPdf,
}

/// Share of control characters (other than tab, newline, carriage return, form feed) above
/// which "text" is taken to be binary.
const MAX_CONTROL_SHARE: f64 = 0.05;

/// Extracts the readable text of `bytes`, named `file_name`, optionally with the content type
/// the uploader declared.
pub fn extract(file_name: &str, content_type: Option<&str>, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let fail = |reason| ExtractError { file: file_name.to_owned(), reason };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(fail(ExtractFailure::Empty));
    }
    let format = detect(file_name, content_type, bytes);
    let (text, title) = match format {
        Format::Pdf => pdf::extract(bytes).map_err(fail)?,
        Format::Text => (decode_text(bytes).map_err(fail)?.replace("\r\n", "\n"), None),
        Format::Markdown => markdown::extract(&decode_text(bytes).map_err(fail)?),
        Format::Html => html::extract(&decode_text(bytes).map_err(fail)?),
    };
    let text = tidy(&text);
    if text.is_empty() {
        return Err(fail(ExtractFailure::NoText));
    }
    let title = title.map(|t| t.split_whitespace().collect::<Vec<_>>().join(" ")).filter(|t| !t.is_empty());
    Ok(Extracted { text, format, title })
}

/// The format of a file: the declared content type wins, then the extension, then the bytes.
pub fn detect(file_name: &str, content_type: Option<&str>, bytes: &[u8]) -> Format {
    if let Some(format) = content_type.and_then(by_content_type) {
        return format;
    }
    if let Some(format) = by_extension(file_name) {
        return format;
    }
    sniff(bytes)
}

fn by_content_type(content_type: &str) -> Option<Format> {
    let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/pdf" | "application/x-pdf" => Some(Format::Pdf),
        "text/html" | "application/xhtml+xml" => Some(Format::Html),
        "text/markdown" | "text/x-markdown" => Some(Format::Markdown),
        "text/plain" => Some(Format::Text),
        // Generic types (application/octet-stream, …) say nothing: look further.
        _ => None,
    }
}

fn by_extension(file_name: &str) -> Option<Format> {
    let (_, extension) = file_name.rsplit_once('.')?;
    match extension.to_ascii_lowercase().as_str() {
        "pdf" => Some(Format::Pdf),
        "html" | "htm" | "xhtml" => Some(Format::Html),
        "md" | "markdown" | "mdown" | "mkd" => Some(Format::Markdown),
        "txt" | "text" => Some(Format::Text),
        _ => None,
    }
}

fn sniff(bytes: &[u8]) -> Format {
    let start = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = &start[start.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(start.len())..];
    if start.starts_with(b"%PDF-") {
        return Format::Pdf;
    }
    let head: Vec<u8> = start.iter().take(64).map(u8::to_ascii_lowercase).collect();
    if head.starts_with(b"<!doctype html") || head.starts_with(b"<html") {
        return Format::Html;
    }
    Format::Text
}

/// UTF-8 text without a byte-order mark, refused when it looks binary.
fn decode_text(bytes: &[u8]) -> Result<String, ExtractFailure> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if let Some(offset) = bytes.iter().position(|&b| b == 0) {
        return Err(ExtractFailure::Binary { reason: format!("NUL byte at offset {offset}") });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| ExtractFailure::NotUtf8 { offset: e.valid_up_to() })?;
    let (mut total, mut control) = (0usize, 0usize);
    for c in text.chars() {
        total += 1;
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c') {
            control += 1;
        }
    }
    if total > 0 && control as f64 / total as f64 > MAX_CONTROL_SHARE {
        return Err(ExtractFailure::Binary { reason: format!("{control} control characters in {total}") });
    }
    Ok(text.to_owned())
}

/// Trims every line's trailing spaces, collapses runs of blank lines to one, and trims the
/// whole text.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(name: &str, content_type: Option<&str>, bytes: &[u8]) -> ExtractFailure {
        let error = extract(name, content_type, bytes).expect_err("must fail");
        assert_eq!(error.file, name);
        assert!(error.to_string().starts_with(&format!("{name}: ")), "{error}");
        error.reason
    }

    #[test]
    fn format_comes_from_content_type_then_extension_then_bytes() {
        let cases: &[(&str, Option<&str>, &[u8], Format)] = &[
            ("a.txt", Some("text/html; charset=utf-8"), b"<p>x</p>", Format::Html),
            ("a.bin", Some("application/pdf"), b"%PDF-1.4", Format::Pdf),
            ("a.md", Some("application/octet-stream"), b"# x", Format::Markdown),
            ("notes.MARKDOWN", None, b"x", Format::Markdown),
            ("page.HTM", None, b"x", Format::Html),
            ("a.pdf", None, b"not a pdf", Format::Pdf),
            ("upload", None, b"  %PDF-1.7\n", Format::Pdf),
            ("upload", None, b"\xEF\xBB\xBF<!DOCTYPE html><p>x", Format::Html),
            ("upload", None, b"<HTML><body>x", Format::Html),
            ("README", None, b"plain words", Format::Text),
            ("data.csv", None, b"a,b\n1,2", Format::Text),
        ];
        for (name, content_type, bytes, want) in cases {
            assert_eq!(detect(name, *content_type, bytes), *want, "{name} {content_type:?}");
        }
    }

    #[test]
    fn plain_text_is_tidied_and_kept() {
        let got =
            extract("a.txt", None, b"\xEF\xBB\xBFFirst line.  \r\nSecond.\r\n\r\n\r\n\r\nThird.\n").expect("text");
        assert_eq!(got, Extracted { text: "First line.\nSecond.\n\nThird.".into(), format: Format::Text, title: None });
    }

    #[test]
    fn empty_binary_and_invalid_text_are_refused_with_the_reason() {
        assert_eq!(failure("empty.txt", None, b""), ExtractFailure::Empty);
        assert_eq!(failure("blank.md", None, b" \n\t\r\n "), ExtractFailure::Empty);
        assert!(matches!(failure("image.txt", None, b"GIF89a\x00\x01"), ExtractFailure::Binary { .. }));
        let controls: Vec<u8> = b"abc".iter().copied().chain([0x01, 0x02, 0x1b, 0x7f, 0x03]).collect();
        assert!(matches!(failure("ctl.txt", None, &controls), ExtractFailure::Binary { .. }));
        assert_eq!(failure("latin1.txt", None, b"caf\xe9 au lait"), ExtractFailure::NotUtf8 { offset: 3 });
        assert_eq!(failure("tags.html", None, b"<html><script>x()</script></html>"), ExtractFailure::NoText);
        assert_eq!(failure("fake.pdf", None, b"hello, I am not a PDF"), ExtractFailure::NotPdf);
    }
}
