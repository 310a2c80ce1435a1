//! Markdown to readable text with `pulldown-cmark`: markup goes, words stay; headings,
//! paragraphs, list items and table rows end lines; front matter is skipped; embedded HTML
//! keeps its text. The title is the first top-level heading.

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

pub(super) fn extract(source: &str) -> (String, Option<String>) {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS;
    let mut out = String::with_capacity(source.len());
    let mut title: Option<String> = None;
    // The text of the top-level heading being read, if any.
    let mut heading: Option<String> = None;
    let mut in_metadata = false;
    for event in Parser::new_ext(source, options) {
        match event {
            Event::Start(Tag::MetadataBlock(_)) => in_metadata = true,
            Event::End(TagEnd::MetadataBlock(_)) => in_metadata = false,
            _ if in_metadata => {}
            Event::Start(Tag::Heading { level, .. }) => {
                if level == HeadingLevel::H1 && title.is_none() {
                    heading = Some(String::new());
                }
                line_break(&mut out);
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(text) = heading.take() {
                    title = Some(text);
                }
                paragraph_break(&mut out);
            }
            Event::Start(Tag::Item) | Event::Start(Tag::TableRow) | Event::Start(Tag::TableHead) => {
                line_break(&mut out)
            }
            Event::End(TagEnd::TableCell) => out.push_str(" | "),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::CodeBlock
                | TagEnd::BlockQuote(_)
                | TagEnd::List(_)
                | TagEnd::Table
                | TagEnd::FootnoteDefinition,
            ) => paragraph_break(&mut out),
            Event::End(TagEnd::Item | TagEnd::TableRow | TagEnd::TableHead) => line_break(&mut out),
            Event::Text(text) | Event::Code(text) | Event::InlineMath(text) | Event::DisplayMath(text) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&text);
                }
                out.push_str(&text);
            }
            Event::Html(html) | Event::InlineHtml(html) => {
                let (text, _) = super::html::extract_fragment(&html);
                if !text.trim().is_empty() {
                    out.push_str(text.trim());
                    out.push(' ');
                }
            }
            Event::SoftBreak => out.push(' '),
            Event::HardBreak | Event::Rule => line_break(&mut out),
            _ => {}
        }
    }
    (out, title)
}

fn line_break(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn paragraph_break(out: &mut String) {
    line_break(out);
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use crate::extract::{Format, extract};

    #[test]
    fn markup_goes_words_stay_and_the_first_heading_is_the_title() {
        let source = "---\nauthor: someone\n---\n\n# The *Ledger*\n\nEvery action is **sealed** in a \
                      [Merkle tree](https://example.com).\nIt is `append-only`.\n\n## Proofs\n\n- inclusion\n- \
                      consistency\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```rust\nfn main() {}\n```\n\n<div>raw <b>html</b></div>\n";
        let got = extract("ledger.md", None, source.as_bytes()).expect("markdown");
        assert_eq!(got.format, Format::Markdown);
        assert_eq!(got.title.as_deref(), Some("The Ledger"));
        assert_eq!(
            got.text,
            "The Ledger\n\nEvery action is sealed in a Merkle tree. It is append-only.\n\nProofs\n\ninclusion\n\
             consistency\n\na | b |\n1 | 2 |\n\nfn main() {}\n\nraw html"
        );
        assert!(!got.text.contains("author"), "front matter is not text");
    }
}
