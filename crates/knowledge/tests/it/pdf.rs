//! PDF extraction on real files: one written by another PDF producer (fpdf2, compressed
//! streams, an embedded subset TrueType font with a ToUnicode map), one written by hand here,
//! and hostile bytes (truncations, flipped bytes, noise) that must fail cleanly, never panic.

use knowledge::{ExtractFailure, Format, extract};

const HANDBOOK: &[u8] = include_bytes!("../fixtures/handbook.pdf");

#[test]
fn a_produced_pdf_gives_the_text_of_every_page_and_its_title() {
    let got = extract("handbook.pdf", Some("application/pdf"), HANDBOOK).expect("pdf");
    assert_eq!(got.format, Format::Pdf);
    assert_eq!(got.title.as_deref(), Some("Sealed Ledger Handbook"));
    let words = got.text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words.contains("The ledger seals every agent action."), "{words}");
    assert!(words.contains("signed checkpoint."), "{words}");
    assert!(words.contains("Zürich café: naïve résumé."), "the embedded font's text: {words}");
    assert!(words.find("seals").expect("page 1") < words.find("Zürich").expect("page 2"), "pages in order");
}

/// A minimal one-page PDF with a correct cross-reference table.
fn handwritten(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> \
         /Contents 5 0 R >>"
            .to_owned(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes(),
    );
    pdf
}

#[test]
fn a_handwritten_pdf_is_read_and_sniffed_without_a_name_or_type() {
    let pdf = handwritten("Written by hand for Nexus");
    let got = extract("upload", None, &pdf).expect("pdf");
    assert_eq!((got.format, got.text.trim(), got.title), (Format::Pdf, "Written by hand for Nexus", None));
}

#[test]
fn not_a_pdf_and_corrupt_pdfs_are_clear_errors() {
    let error = extract("report.pdf", None, b"<html>this is not a pdf</html>").expect_err("not a pdf");
    assert_eq!(error.reason, ExtractFailure::NotPdf);
    assert_eq!(error.to_string(), "report.pdf: not a PDF: it does not start with %PDF-");

    let error = extract("broken.pdf", None, b"%PDF-1.4\nnothing else here").expect_err("corrupt");
    assert!(matches!(error.reason, ExtractFailure::BadPdf(_)), "{error}");
    assert!(error.to_string().starts_with("broken.pdf: unreadable PDF: "), "{error}");

    // A page that draws nothing is a PDF without text (a scan, say).
    let blank = handwritten("");
    let error = extract("scan.pdf", None, &blank).expect_err("no text");
    assert_eq!(error.reason, ExtractFailure::NoText);
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn hostile_bytes_fail_cleanly_and_never_panic() {
    // Every truncation of a real file.
    for end in (0..HANDBOOK.len()).step_by(7) {
        let _ = extract("cut.pdf", None, &HANDBOOK[..end]);
    }
    // Flipped bytes all over a real file (they land in streams, the xref table, fonts).
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    for _ in 0..1500 {
        let mut bytes = HANDBOOK.to_vec();
        for _ in 0..1 + noise.next() % 4 {
            let at = (noise.next() % bytes.len() as u64) as usize;
            bytes[at] = noise.next() as u8;
        }
        let _ = extract("flipped.pdf", None, &bytes);
    }
    // Noise behind a PDF header.
    for len in [0usize, 1, 16, 300, 5000] {
        let mut bytes = b"%PDF-1.7\n".to_vec();
        bytes.extend((0..len).map(|_| noise.next() as u8));
        let error = extract("noise.pdf", None, &bytes).expect_err("noise is no PDF");
        assert!(matches!(error.reason, ExtractFailure::BadPdf(_) | ExtractFailure::NoText), "{error}");
    }
}
